"""A fresh virtual environment that sees the third-party packages but not this repository.

`python -m venv --without-pip` makes an empty environment in about a second; a `.pth` file then
puts the test interpreter's site-packages on its path as a plain directory. A plain directory on
the path is searched for modules, but its own `.pth` files are not run, so the editable install of
this repository (a `.pth` import hook in that site-packages) stays out: `regen_dataset` and
`regen_models` can only come from what the test installs, never from the checkout. This stands in
for `pip install` of the dependencies, which needs the network and minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path


def make_isolated_venv(directory: Path) -> Path:
    """Create the environment in `directory`; returns its python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(directory)], check=True, timeout=120
    )
    python = directory / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    shared = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "third_party_packages.pth").write_text("\n".join(sorted(shared)) + "\n")
    return python


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a process in the isolated venv: no PYTHONPATH, caches under `home`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} and not key.startswith("HF_")
    }
    env.update({"HF_HOME": str(home / "hf_home"), "HF_HUB_OFFLINE": "1", **extra})
    return env


NOT_IMPORTABLE_CHECK = (
    "import importlib.util\n"
    "leaked = [name for name in ('regen_dataset', 'regen_models', 'training')\n"
    "          if importlib.util.find_spec(name) is not None]\n"
    "assert not leaked, f'the repository leaked into the isolated environment: {leaked}'\n"
)
