"""The package works installed, not only from the checkout.

Builds the wheel from the files git knows (a copy, so the build leaves nothing in the checkout;
`regen release` ships the same wheel's modules with the Space), installs it into a fresh virtual environment outside the checkout, and from a directory outside it
runs `regen dataset build` on the sample the wheel ships, then `datasets.load_dataset` on the
result. It also checks that `regen_dataset` is imported from the installed wheel.

To stay offline and fast, the environment does not download the dependencies: it is a new
`venv --without-pip` whose path includes this interpreter's site-packages as a plain directory
(see `tests/isolated_venv.py`), which supplies datasets, pyarrow and the rest but not the editable
install of this repository. The wheel goes in with `pip install --no-deps --target` into the new
environment's own site-packages, which comes first on its path.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.isolated_venv import isolated_env, make_isolated_venv
from training.release import build_wheel, plan_space


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def test_the_installed_wheel_builds_and_loads_a_folder(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("the wheel is built from the files git tracks; no git checkout here")
    # The builder `regen release` uses for the Space.
    wheel = build_wheel(REPO, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        assert "training/space/registry.py" in archive.namelist()  # what the Space runs
        recipes = {name for name in archive.namelist() if name.startswith("training/recipes/")}
        shipped = {
            path.relative_to(REPO).as_posix() for path in REPO.glob("training/recipes/*/*.yaml")
        }
        assert recipes == shipped  # `--config cpu`, `regen demo`

    python = make_isolated_venv(tmp_path / "venv")
    site_packages = _run(
        [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q"]
        + ["--target", site_packages, str(wheel)]
    )
    regen = Path(site_packages, "bin", "regen")
    assert regen.is_file(), "the wheel installs no `regen` console script"

    work = tmp_path / "elsewhere"  # neither the checkout nor the source copy
    work.mkdir()
    env = isolated_env(tmp_path, HF_DATASETS_CACHE=str(tmp_path / "datasets_cache"))
    where = _run(
        [str(python), "-I", "-c", "import regen_dataset; print(regen_dataset.__file__)"],
        cwd=work,
        env=env,
    ).stdout.strip()
    assert Path(where).is_relative_to(site_packages), where

    sample = Path(site_packages, "regen_dataset", "samples", "office_synthetic.jsonl")
    assert sample.is_file(), "the wheel does not ship the samples"
    built = _run(
        [str(python), str(regen), "dataset", "build", "--source", f"office={sample}"]
        + ["--out", "regen_out"],
        cwd=work,
        env=env,
    )
    assert "office: train 300" in built.stdout, built.stdout
    card = (work / "regen_out" / "README.md").read_text()
    assert card.startswith("---\n") and "## Splits, targets and what may be an input" in card

    script = "import datasets; d = datasets.load_dataset('regen_out', 'office'); "
    loaded = _run(
        [str(python), "-I", "-c", script + "print(d['test'].num_rows, sorted(d))"],
        cwd=work,
        env=env,
    )
    assert loaded.stdout.strip().splitlines()[-1] == "300 ['test', 'train', 'validation']"

    # The Space as `regen release` uploads it: the Hub installs its requirements before the
    # repository's files are copied in, so they must not point at a file of the repository; the
    # app imports this package from its own folder.
    space = plan_space("org/regen-demo", REPO / "space", [], [], wheel)
    requirements = space.files["requirements.txt"].decode().splitlines()
    assert "gradio>=6.31" in requirements and "torch>=2.2" in requirements
    assert not [line for line in requirements if ".whl" in line or line.startswith(("./", "/"))]
    assert not [line for line in requirements if line.startswith("regen-benchmark")]
    repo = tmp_path / "space-repo"
    for name, content in space.files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(content if isinstance(content, bytes) else content.read_bytes())
    (repo / "probe.py").write_text(
        "import training.space, regen_models.lumen, regen_dataset\nprint(training.space.__file__)\n"
    )
    where = _run([str(python), "probe.py"], cwd=repo, env=env).stdout.strip().splitlines()[-1]
    assert Path(where).is_relative_to(repo), where
    assert (repo / "regen_dataset" / "samples" / "office_synthetic.jsonl").is_file()
