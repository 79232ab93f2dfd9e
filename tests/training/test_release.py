"""`regen release` against the loopback Hub (tests/fake_hub.py), fully offline.

A demo-like folder (the sample dataset, a tiny FLARE trained with the tiny recipe and its `regen
eval` folder, a tiny narrator adapter, a tiny LUMEN) and a small Space folder are released; each
repository is checked file by file. Then a process in which this package cannot be imported
downloads the FLARE and LUMEN checkpoints with `trust_remote_code=True` and runs them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from regen_models.items import VOCABULARY_FILE
from tests.conftest import REPO, WordCountEncoder, build_sample_folder
from tests.fake_hub import TOKEN, FakeHub, hub_env, sha256
from tests.isolated_venv import NOT_IMPORTABLE_CHECK, isolated_env, make_isolated_venv
from training import cli
from training import release as release_module
from training.model_card import write_model_card
from training.release import ReleaseError, Sources, plan_release, plan_space
from training.remote_code import RemoteCodeError, _check_imports, _rewrite_imports

ORG = "test-org"
TINY_FLARE = str(REPO / "training" / "recipes" / "flare" / "tiny.yaml")
_CONSOLE_SCRIPT = Path(sys.executable).with_name("regen")
REGEN = (
    [str(_CONSOLE_SCRIPT)] if _CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "training.cli"]
)
SPACE_README = """---
title: REGEN
sdk: gradio
sdk_version: 5.0.0
app_file: app.py
license: apache-2.0
---

# The REGEN demo
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory, tiny_gemma_base) -> Path:
    """What `regen demo` leaves, in small: dataset, checkpoints, an eval folder; and a Space."""
    from training.evaluate import run_table

    root = tmp_path_factory.mktemp("release")
    demo = root / "demo_out"
    folder = build_sample_folder(demo / "regen")
    flare = demo / "checkpoints" / "flare-office"
    cli.main(
        ["train", "flare", "--config", TINY_FLARE, "--dataset_name", str(folder),
         "--dataset_config", "office", "--output_dir", str(flare)]
    )  # fmt: skip
    predictions = demo / "predictions" / "flare" / "office.jsonl"
    cli.main(
        ["predict", "--model", str(flare), "--dataset_name", str(folder), "--dataset_config",
         "office", "--split", "test", "--out", str(predictions)]
    )  # fmt: skip
    run_table(folder, "test", [("flare", "office", str(predictions))], str(demo / "eval"),
              encoder=WordCountEncoder())  # fmt: skip
    save_narrator(tiny_gemma_base, demo / "checkpoints" / "narrator-office", folder)
    save_lumen(demo / "checkpoints" / "lumen-office", folder)
    space = root / "space"
    (space / "__pycache__").mkdir(parents=True)
    (space / "README.md").write_text(SPACE_README)
    (space / "app.py").write_text("import gradio\n")
    (space / "requirements.txt").write_text("gradio\n")
    (space / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    return demo


def save_narrator(base: Path, out: Path, dataset: Path) -> None:
    from tests.regen_models.test_narrator import save_adapter
    from training.train_narrator import LOAD_SNIPPET

    save_adapter(base, out)
    write_model_card(
        out, model_name="Narrator", script="training/train_narrator.py",
        dataset_name=str(dataset), dataset_config="office", arguments={"r": 4},
        metrics={"train_loss": 1.0}, metrics_split="validation", load_snippet=LOAD_SNIPPET,
        library_name="peft", limitations=("A tiny adapter of a test.",),
    )  # fmt: skip


def save_lumen(out: Path, dataset: Path) -> None:
    from regen_models.lumen.data import add_item_tokens
    from regen_models.lumen.modeling_lumen import LumenForCausalLM
    from tests.regen_models.test_flare import tiny_vocabulary
    from tests.tiny_gemma import tiny_gemma, tiny_tokenizer
    from training.train_lumen import LOAD_SNIPPET

    tokenizer = tiny_tokenizer()
    add_item_tokens(tokenizer)
    model = LumenForCausalLM.from_base(
        tiny_gemma(tokenizer, 0), tokenizer, 12, base_model="embedded", category="office"
    )
    model.attach_item_vocabulary(tiny_vocabulary(12))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_model_card(
        out, model_name="LUMEN", script="training/train_lumen.py", dataset_name=str(dataset),
        dataset_config="office", arguments={}, metrics={"NDCG@10": 0.1},
        metrics_split="validation", load_snippet=LOAD_SNIPPET, base_model=None,
    )  # fmt: skip


def release(demo: Path, hub_url: str, home: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [*REGEN, "release", "--org", ORG, "--demo-dir", str(demo)]
    command += ["--space", str(demo.parent / "space"), *extra]
    if "--space-wheel" not in extra:  # building the wheel has a test of its own
        command += ["--space-wheel", "none"]
    return subprocess.run(
        command, cwd=REPO, env=hub_env(home, hf_endpoint=hub_url), capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def released(demo, tmp_path_factory):
    """The fake Hub after `regen release`, and the command's output."""
    home = tmp_path_factory.mktemp("hub-home")
    with FakeHub() as hub:
        result = release(demo, hub.url, home)
        assert result.returncode == 0, f"{hub.errors}\n{result.stdout}\n{result.stderr[-3000:]}"
        yield hub, result


EXPECTED_REPOS = {
    f"datasets/{ORG}/regen",
    f"{ORG}/regen-flare-office",
    f"{ORG}/regen-lumen-office",
    f"{ORG}/regen-narrator-office",
    f"spaces/{ORG}/regen_metric",
    f"spaces/{ORG}/regen-demo",
}


def repo_key(upload) -> str:
    prefix = {"dataset": "datasets/", "space": "spaces/", "model": ""}[upload.repo_type]
    return prefix + upload.repo_id


def test_every_repository_holds_exactly_the_planned_files(demo, released):
    hub, result = released
    assert hub.errors == []
    assert TOKEN not in result.stdout + result.stderr  # the secret never reaches the logs
    api_calls = [(path, auth) for _, path, auth in hub.requests if path.startswith("/api/")]
    assert api_calls and all(auth == f"Bearer {TOKEN}" for _, auth in api_calls)
    assert set(hub.repo_files) == EXPECTED_REPOS
    created = {(c["organization"], c["name"], c.get("type", "model")) for c in hub.created}
    assert (ORG, "regen-demo", "space") in created and (ORG, "regen", "dataset") in created
    assert hub.space_variables == {f"{ORG}/regen-demo": {"REGEN_ORG": ORG}}  # for space/app.py

    uploads = plan_release(
        ORG,
        Sources(
            datasets=[demo / "regen"],
            checkpoints=sorted((demo / "checkpoints").iterdir()),
            evals=[demo / "eval"],
            metric=REPO / "regen_models" / "regen_metric",
            space=demo.parent / "space",
        ),
    )
    assert {repo_key(upload) for upload in uploads} == EXPECTED_REPOS
    for upload in uploads:
        published = hub.repo_files[repo_key(upload)]
        assert published.keys() == upload.files.keys(), upload.repo_id
        for path, content in upload.files.items():
            expected = content if isinstance(content, bytes) else content.read_bytes()
            assert sha256(published[path]) == sha256(expected), (upload.repo_id, path)
        assert f"{upload.repo_type} {upload.repo_id}" in result.stdout

    flare = hub.repo_files[f"{ORG}/regen-flare-office"]
    assert set(flare) == {
        "README.md", "config.json", "model.safetensors", VOCABULARY_FILE,
        "configuration_flare.py", "modeling_flare.py", "vocabulary_io.py",
    }  # fmt: skip
    assert json.loads(flare["config.json"])["auto_map"] == {
        "AutoConfig": "configuration_flare.FlareConfig",
        "AutoModel": "modeling_flare.FlareModel",
    }
    local = demo / "checkpoints" / "flare-office"
    assert flare["model.safetensors"] == (local / "model.safetensors").read_bytes()
    assert "training_args.bin" not in flare and (local / "training_args.bin").exists()
    assert any(p.name.startswith("checkpoint-") for p in local.iterdir())  # left at home

    lumen = hub.repo_files[f"{ORG}/regen-lumen-office"]
    assert {"modeling_lumen.py", "configuration_lumen.py", "tokenizer.json"} <= set(lumen)
    assert json.loads(lumen["config.json"])["auto_map"]["AutoModelForCausalLM"] == (
        "modeling_lumen.LumenForCausalLM"
    )
    narrator = hub.repo_files[f"{ORG}/regen-narrator-office"]
    assert {"adapter_config.json", "adapter_model.safetensors", "narrator_config.json"} <= set(
        narrator
    )
    assert not any(path.endswith(".py") for path in narrator)  # peft loads it: no remote code
    # The tiny adapter's base is a local folder: published as it is, and said.
    assert result.stdout.count("its base model is the local folder") == 1

    metric = hub.repo_files[f"spaces/{ORG}/regen_metric"]
    assert {"regen_metric.py", "metric_definitions.py", "README.md"} <= set(metric)
    assert "__init__.py" not in metric
    space = hub.repo_files[f"spaces/{ORG}/regen-demo"]
    assert set(space) == {"README.md", "app.py", "requirements.txt"}  # no __pycache__


@pytest.mark.parametrize("kind", ["narrator", "lumen", "fusion"])
def test_a_local_base_is_a_problem_for_an_adapter_only(tmp_path, kind):
    """An adapter needs its base to load; LUMEN and the fusion narrator carry full weights."""
    from training.release import Upload, _base_model

    base = str(tmp_path / "my-gemma")
    name, key = (
        ("adapter_config.json", "base_model_name_or_path")
        if kind == "narrator"
        else ("config.json", "base_model")
    )
    (tmp_path / name).write_text(json.dumps({key: base}))
    upload = Upload("org/model", "model", tmp_path, {})
    assert _base_model(tmp_path, kind, upload) is None  # no Hub id for the card to link
    (warning,) = upload.warnings
    assert base in warning
    assert ("only this machine can load it" in warning) == (kind == "narrator")


def test_no_local_path_is_published(demo, released):
    hub, _ = released
    for key, files in hub.repo_files.items():
        for path, data in files.items():
            if path == "adapter_config.json":  # the tiny base's folder, warned about above
                continue
            text = data.decode("utf-8", errors="replace")
            assert str(demo.parent) not in text and str(REPO) not in text, (key, path)


def header(card: bytes) -> dict:
    import yaml

    text = card.decode()
    assert text.startswith("---\n")
    return yaml.safe_load(text[4 : text.index("\n---\n", 4)])


def test_model_cards(released):
    hub, _ = released
    flare = hub.repo_files[f"{ORG}/regen-flare-office"]["README.md"]
    meta = header(flare)
    assert meta["library_name"] == "transformers" and meta["license"] == "apache-2.0"
    assert meta["datasets"] == [f"{ORG}/regen"] and "regen" in meta["tags"]
    text = flare.decode()
    for section in ("## Training", "## Results", "## Evaluation", "## How to load",
                    "## Limitations", "## Citation"):  # fmt: skip
        assert section in text, section
    assert text.index("## Evaluation") < text.index("## How to load")
    assert "| flare (ranking) |" in text and "History + critique" in text  # the eval table
    assert f'AutoModel.from_pretrained("{ORG}/regen-flare-office", trust_remote_code=True)' in text
    assert f"--dataset_name {ORG}/regen --dataset_config office" in text
    assert "--config training/recipes/flare/tiny.yaml" in text
    assert "SYNTHETIC" in text and "PATH_OR_REPO_ID" not in text

    narrator = hub.repo_files[f"{ORG}/regen-narrator-office"]["README.md"]
    meta = header(narrator)
    assert meta["library_name"] == "peft" and meta["datasets"] == [f"{ORG}/regen"]
    assert "base_model" not in meta  # a local base has no Hub id
    assert "- A tiny adapter of a test." in narrator.decode()  # the card's own limitation kept
    assert f'Narrator.from_pretrained("{ORG}/regen-narrator-office")' in narrator.decode()

    lumen = header(hub.repo_files[f"{ORG}/regen-lumen-office"]["README.md"])
    assert lumen["base_model"] == "google/gemma-3-270m" and lumen["license"] == "gemma"

    space = header(hub.repo_files[f"spaces/{ORG}/regen-demo"]["README.md"])
    assert space["sdk"] == "gradio" and space["datasets"] == [f"{ORG}/regen"]
    assert set(space["models"]) == {
        f"{ORG}/regen-flare-office", f"{ORG}/regen-lumen-office", f"{ORG}/regen-narrator-office"
    }  # fmt: skip


def test_predict_takes_the_released_checkpoints_by_repo_id(demo, released, tmp_path):
    """The cards' `regen predict --model ORG/... --narrator ORG/...` works as written."""
    hub, _ = released
    out = tmp_path / "hybrid.jsonl"
    command = [*REGEN, "predict", "--model", f"{ORG}/regen-flare-office",
               "--narrator", f"{ORG}/regen-narrator-office", "--dataset_name",
               str(demo / "regen"), "--limit", "2", "--kinds", "purchase_reason",
               "--no_progress", "--out", str(out)]  # fmt: skip
    env = hub_env(tmp_path, hf_endpoint=hub.url)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 2 and lines[0]["narratives"]["purchase_reason"] is not None

    command[command.index("--model") + 1] = f"{ORG}/regen-flare-clothing"  # never released
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert (
        f"{ORG}/regen-flare-clothing: no such checkpoint folder here, and no Hub" in result.stderr
    )


def test_dry_run_lists_every_file_and_sends_nothing(demo, tmp_path):
    with FakeHub() as hub:
        result = release(demo, hub.url, tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert hub.requests == []
    out = result.stdout
    assert "dry run: 6 repositories, nothing sent" in out
    assert f"model {ORG}/regen-flare-office (FLARE checkpoint, from " in out
    for line in ("    modeling_flare.py ", "    model.safetensors ", "    data/office/test-"):
        assert line in out, line
    assert "left out: " in out and "training_args.bin" in out


def test_a_second_release_deletes_what_the_new_one_lacks(demo, tmp_path):
    space = demo.parent / "space"
    with FakeHub() as hub:
        first = release(demo, hub.url, tmp_path, "--no-metric")
        assert first.returncode == 0, first.stderr[-3000:]
        (space / "requirements.txt").unlink()
        try:
            second = release(demo, hub.url, tmp_path, "--no-metric")
        finally:
            (space / "requirements.txt").write_text("gradio\n")
        assert second.returncode == 0, second.stderr[-3000:]
    (last,) = [c for c in hub.commits if c.repo == f"spaces/{ORG}/regen-demo"][-1:]
    assert last.deleted == {"requirements.txt"}
    assert set(hub.repo_files[f"spaces/{ORG}/regen-demo"]) == {"README.md", "app.py"}
    assert f"spaces/{ORG}/regen_metric" not in hub.repo_files


LOAD_WITHOUT_THE_PACKAGE = (
    NOT_IMPORTABLE_CHECK
    + """
import json, sys, torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
repo, kind, inputs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
config = AutoConfig.from_pretrained(repo, trust_remote_code=True)
auto = AutoModel if kind == "flare" else AutoModelForCausalLM
model = auto.from_pretrained(repo, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
with torch.no_grad():
    output = model(**{k: torch.tensor(v) for k, v in inputs.items()})
scores = output.logits if kind == "flare" else output.item_logits
print(json.dumps({"config": type(config).__name__, "model": type(model).__name__,
                  "items": model.item_vocabulary.item_ids, "scores": scores.tolist()}))
"""
)


@pytest.mark.parametrize("kind", ["flare", "lumen"])
def test_checkpoint_loads_by_name_where_this_package_cannot_be_imported(
    kind, demo, released, tmp_path
):
    """The modeling code comes from the repository (`trust_remote_code`): a fresh venv that sees
    transformers and torch but not this repository loads the model and scores the catalog as
    the installed package does."""
    from transformers import AutoModel

    import regen_models.flare
    import regen_models.lumen  # noqa: F401  (registers the Auto classes)

    hub, _ = released
    local = AutoModel.from_pretrained(demo / "checkpoints" / f"{kind}-office").eval()
    if kind == "flare":
        inputs = {"item_ids": [[3, 7, 11, local.config.mask_item_id]]}
        expected = local(**{k: torch.tensor(v) for k, v in inputs.items()}).logits
    else:
        config = local.config
        inputs = {
            "input_ids": [
                [5, config.item_token_id, 9, config.item_token_id, config.switch_token_id]
            ],
            "item_ids": [[2, 4]],
        }
        expected = local(**{k: torch.tensor(v) for k, v in inputs.items()}).item_logits
    python = make_isolated_venv(tmp_path / "venv")
    env = isolated_env(
        tmp_path,
        HF_ENDPOINT=hub.url,
        HF_HUB_OFFLINE="0",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    result = subprocess.run(
        [str(python), "-I", "-c", LOAD_WITHOUT_THE_PACKAGE, f"{ORG}/regen-{kind}-office", kind,
         json.dumps(inputs)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["model"] == type(local).__name__
    assert loaded["config"] == type(local.config).__name__
    assert loaded["items"] == local.item_vocabulary.item_ids
    assert torch.allclose(torch.tensor(loaded["scores"]), expected, atol=1e-5)


# -- the pieces --------------------------------------------------------------------------------


def test_an_import_of_a_module_that_is_not_shipped_is_refused():
    import ast

    text = "from regen_models.prompts import build_prompt\n"
    with pytest.raises(RemoteCodeError, match="line 1: imports regen_models.prompts, which is"):
        _rewrite_imports(text, ast.parse(text), {}, {}, "modeling_x.py")
    text = "from regen_models.items import Missing\n"
    trees = {"vocabulary_io": ast.parse("class ItemVocabularyMixin: ...\n")}
    with pytest.raises(RemoteCodeError, match="Missing not defined in vocabulary_io.py"):
        _rewrite_imports(
            text, ast.parse(text), {"regen_models.items": "vocabulary_io"}, trees, "m.py"
        )
    with pytest.raises(RemoteCodeError, match="imports datasets, which a machine"):
        _check_imports(ast.parse("def f():\n    import datasets\n"), "m.py")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--org", "a/b"], "--org must be an organisation or user name"),
        (["--org", "o", "--checkpoint", "{tmp}"], "is not a checkpoint"),
        (["--org", "o", "--demo-dir", "{tmp}/missing"], "run `regen demo` first"),
        (["--org", "o", "--checkpoint", "{tmp}", "--eval", "{tmp}"], "has no results.json"),
    ],
)
def test_bad_input_is_a_clear_error(arguments, message, tmp_path, capsys):
    arguments = [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    with pytest.raises(SystemExit):
        cli.main(["release", *arguments, "--no-space", "--dry-run"])
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not os.path.exists(tmp_path / "missing")


def write_wheel(path: Path, metadata: str = "Metadata-Version: 2.4\nName: regen-benchmark\n"):
    """A wheel of two modules with `metadata`."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("regen_models/__init__.py", "# models\n")
        archive.writestr("training/space/app_parts.py", "# parts\n")
        archive.writestr("regen_benchmark-0.1.0.dist-info/METADATA", metadata)
    return path


def test_the_space_ships_the_package_modules_and_their_requirements(tmp_path):
    """A Space installs its requirements before its files are copied in: the package's modules
    go beside app.py, and its requirements (with those of its `space` extra) into the Space's."""
    space = tmp_path / "space"
    space.mkdir()
    (space / "README.md").write_text(SPACE_README)
    (space / "app.py").write_text("import gradio\n")
    (space / "requirements.txt").write_text("gradio==6.31.0\nregen-benchmark[space]>=0.1.0\n")
    wheel = tmp_path / "regen_benchmark-0.1.0-py3-none-any.whl"
    metadata = (
        "Metadata-Version: 2.4\nName: regen-benchmark\nVersion: 0.1.0\n"
        "Requires-Dist: torch>=2.2\nRequires-Dist: tomli; python_version < '3.11'\n"
        'Provides-Extra: space\nRequires-Dist: gradio>=6.31; extra == "space"\n'
        'Provides-Extra: dev\nRequires-Dist: pytest>=8; extra == "dev"\n'
    )
    write_wheel(wheel, metadata)
    upload = plan_space(f"{ORG}/regen-demo", space, [], [], wheel)
    assert not upload.warnings
    assert upload.files["regen_models/__init__.py"] == b"# models\n"
    assert upload.files["training/space/app_parts.py"] == b"# parts\n"
    assert not [name for name in upload.files if "dist-info" in name or name.endswith(".whl")]
    requirements = upload.files["requirements.txt"].decode().splitlines()
    assert requirements == [
        "gradio==6.31.0",
        "# regen-benchmark's own requirements (its modules lie beside app.py)",
        "torch>=2.2",
        "tomli; python_version < '3.11'",
        "gradio>=6.31",
    ]
    assert (space / "requirements.txt").read_text().endswith("[space]>=0.1.0\n")  # untouched
    (space / "requirements.txt").write_text("gradio\n")
    assert "names no regen-benchmark" in plan_space(ORG, space, [], [], wheel).warnings[0]
    (tmp_path / "fake.whl").write_bytes(b"PK not really a wheel")
    for bad in (tmp_path / "missing.whl", tmp_path / "fake.whl"):
        with pytest.raises(ReleaseError, match="not a wheel file"):
            plan_space(ORG, space, [], [], bad)
    parser = argparse.ArgumentParser()
    release_module.add_parser(parser.add_subparsers())
    (tmp_path / "results.json").write_text("{}")  # makes tmp_path an eval folder
    for choice, expected in ((str(wheel), wheel), ("none", None)):
        args = parser.parse_args(
            ["release", "--org", ORG, "--eval", str(tmp_path), "--space", str(space),
             "--space-wheel", choice]
        )  # fmt: skip
        assert release_module.sources_from_args(args).space_wheel == expected


def test_release_card_replaces_whole_names_only(tmp_path, monkeypatch):
    """The folder `demo_out/regen` maps to its repo; `demo_out/regen-users` is another folder
    and must not become `ORG/regen-users` by a prefix match."""
    from training.model_card import card_training_data, release_card

    # Away from a checkout's own demo_out/regen, whose synthetic rows add a limitation.
    monkeypatch.chdir(tmp_path)

    write_model_card(
        tmp_path, model_name="FLARE", script="training/train_flare.py",
        dataset_name="demo_out/regen", dataset_config="office",
        arguments={"other": "demo_out/regen-users", "recipe": "/somewhere/training/recipes/x.yaml"},
        metrics={"NDCG@10": 0.5}, metrics_split="validation",
    )  # fmt: skip
    card = (tmp_path / "README.md").read_text()
    assert card_training_data(card) == ("demo_out/regen", "office")
    released = release_card(
        card,
        replacements={"PATH_OR_REPO_ID": "org/regen-flare"},
        dataset_names={"demo_out/regen": "org/regen"},
        header={"license": "apache-2.0", "datasets": ["org/regen"]},
        evaluation="a table",
        load_first="First this.",
        limitations=("One more.",),
    )
    assert "Data: `org/regen`, config `office`." in released
    assert '"other": "demo_out/regen-users"' in released
    assert '"recipe": "training/recipes/x.yaml"' in released
    assert 'AutoModel.from_pretrained("org/regen-flare")' in released
    assert "## Evaluation\n\na table\n\n## How to load\n\nFirst this.\n\n```python" in released
    assert "## Limitations\n\n- One more.\n\n## Citation" in released
    assert released.startswith("---\nlibrary_name: transformers\n")
    assert header(released.encode())["datasets"] == ["org/regen"]


def test_a_model_without_remote_code_is_released_as_it_is_and_said(tmp_path):
    """A model type of the package that has no entry in training/remote_code.py (a model added
    later) keeps its files and card, without an auto_map, and the listing says so."""
    from training.release import describe, plan_checkpoint

    folder = tmp_path / "ranker-office"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "ranker", "base_model": "x/y"}))
    (folder / "model.safetensors").write_bytes(b"weights")
    write_model_card(
        folder, model_name="Ranker", script="training/train_ranker.py", dataset_name="x/regen",
        dataset_config="office", arguments={}, metrics={"loss": 1.0}, metrics_split="validation",
        load_snippet="import regen_models.ranker", base_model="x/y",
    )  # fmt: skip
    upload = plan_checkpoint(ORG, folder, {})
    assert upload.repo_id == f"{ORG}/regen-ranker-office"
    assert set(upload.files) == {"config.json", "model.safetensors", "README.md"}
    assert upload.files["config.json"] == folder / "config.json"  # no auto_map added
    assert "no self-contained modeling code for model type 'ranker'" in describe([upload])
    meta = header(upload.files["README.md"])
    assert meta["base_model"] == "x/y" and meta["datasets"] == ["x/regen"]
    assert "import regen_models.ranker" in upload.files["README.md"].decode()


def test_a_fusion_checkpoint_loads_with_its_shipped_code_where_this_package_cannot_be_imported(
    tmp_path,
):
    """The fusion narrator's shipped files (its WALS fold-in included) load a checkpoint folder
    in a fresh venv without this package and give the installed package's logits."""
    from tests.regen_models.test_fusion import tiny_fusion
    from tests.tiny_gemma import tiny_tokenizer
    from training.release import plan_checkpoint

    # with a user token: the shipped code folds the user in too
    model = tiny_fusion(
        tiny_tokenizer(), signals="both", adapter="mlp", kinds=["purchase_reason"], user_token=True
    )
    saved = tmp_path / "fusion-office"
    model.save_pretrained(saved)
    write_model_card(
        saved, model_name="Fusion", script="training/train_fusion.py", dataset_name="x/regen",
        dataset_config="office", arguments={}, metrics={"loss": 1.0}, metrics_split="validation",
    )  # fmt: skip
    upload = plan_checkpoint(ORG, saved, {})
    assert {"modeling_fusion.py", "user_vectors.py", "vocabulary_io.py"} <= set(upload.files)
    released = tmp_path / "released"
    released.mkdir()
    for name, content in upload.files.items():
        (released / name).write_bytes(
            content if isinstance(content, bytes) else content.read_bytes()
        )
    inputs = {"input_ids": [[10, 11, 12]], "item_ids": [[-1, 3, 4, 5]]}
    with torch.no_grad():
        expected = model(**{k: torch.tensor(v) for k, v in inputs.items()}).logits
    script = (
        NOT_IMPORTABLE_CHECK
        + """
import json, sys, torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
inputs = json.loads(sys.argv[2])
with torch.no_grad():
    logits = model(**{k: torch.tensor(v) for k, v in inputs.items()}).logits
print(json.dumps({"items": model.item_vocabulary.item_ids, "logits": logits.tolist()}))
"""
    )
    python = make_isolated_venv(tmp_path / "venv")
    result = subprocess.run(
        [str(python), "-I", "-c", script, str(released), json.dumps(inputs)],
        cwd=tmp_path, env=isolated_env(tmp_path), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["items"] == model.item_vocabulary.item_ids
    assert torch.allclose(torch.tensor(loaded["logits"]), expected, atol=1e-5)


def test_a_checkpoint_of_synthetic_data_says_so_once_released_alone_or_not(
    demo, released, tmp_path
):
    from training.model_card import SYNTHETIC_NOTE
    from training.release import plan_checkpoint

    hub, _ = released
    flare = demo / "checkpoints" / "flare-office"
    assert SYNTHETIC_NOTE in (flare / "README.md").read_text()  # written by the training run
    assert (
        hub.repo_files[f"{ORG}/regen-flare-office"]["README.md"].decode().count(SYNTHETIC_NOTE) == 1
    )
    alone = plan_release(ORG, Sources(checkpoints=[flare]))
    assert alone[0].files["README.md"].decode().count(SYNTHETIC_NOTE) == 1
    # A card written before training runs said so: the release reads the dataset's report.
    older = tmp_path / "flare-office"
    shutil.copytree(flare, older)
    card = (older / "README.md").read_text().replace(f"- {SYNTHETIC_NOTE}\n", "")
    (older / "README.md").write_text(card)
    assert SYNTHETIC_NOTE not in card
    upload = plan_checkpoint(ORG, older, {})
    assert upload.files["README.md"].decode().count(SYNTHETIC_NOTE) == 1


@pytest.mark.parametrize("kind", ["flare", "narrator"])
def test_a_checkpoint_without_weights_is_refused(demo, tmp_path, kind):
    from training.release import plan_checkpoint

    folder = tmp_path / f"{kind}-office"
    shutil.copytree(demo / "checkpoints" / f"{kind}-office", folder)
    weights = "adapter_model.safetensors" if kind == "narrator" else "model.safetensors"
    (folder / weights).unlink()
    with pytest.raises(ReleaseError, match=f"{folder} holds no weights"):
        plan_checkpoint(ORG, folder, {})


def test_a_card_takes_eval_figures_of_its_own_training_dataset_only(demo, tmp_path):
    from training.release import plan_checkpoint

    other = tmp_path / "eval-other"
    other.mkdir()
    payload = json.loads((demo / "eval" / "results.json").read_text())
    payload["dataset"] = str(tmp_path / "another-build")  # a FLARE of another dataset
    (other / "results.json").write_text(json.dumps(payload))
    flare = demo / "checkpoints" / "flare-office"
    card = plan_checkpoint(ORG, flare, {}, [demo / "eval", other]).files["README.md"].decode()
    assert card.count("`regen eval` on `") == 1 and "another-build" not in card
    card = plan_checkpoint(ORG, flare, {}, [other]).files["README.md"].decode()
    assert "## Evaluation" not in card


def test_a_folder_whose_name_makes_no_repo_name_is_refused_before_anything_is_sent(demo, tmp_path):
    folder = tmp_path / "flare office"
    shutil.copytree(demo / "checkpoints" / "flare-office", folder)
    with pytest.raises(ReleaseError, match="is not a valid Hub repository name"):
        plan_release(ORG, Sources(checkpoints=[folder]))


def test_the_wheel_built_for_the_space_leaves_no_temporary_folder(demo, monkeypatch, capsys):
    built_in = []

    def build_wheel(out_dir):
        built_in.append(out_dir)
        return write_wheel(out_dir / "regen_benchmark-0.1.0-py3-none-any.whl")

    monkeypatch.setattr(release_module, "build_wheel", build_wheel)
    cli.main(
        ["release", "--org", ORG, "--demo-dir", str(demo), "--space", str(demo.parent / "space"),
         "--dry-run"]
    )  # fmt: skip
    assert "training/space/app_parts.py" in capsys.readouterr().out
    assert len(built_in) == 1 and not built_in[0].exists()


def test_a_short_dataset_name_is_renamed_only_where_the_card_names_data(demo, tmp_path):
    """Trained with `--dataset_name regen` (the README's own example): the released card names
    `ORG/regen` as its data, not as the `regen` command or package; and an evaluation of a
    folder that is not released does not publish its local absolute path."""
    from regen_dataset import CITATION
    from training.model_card import card_training_data
    from training.release import plan_checkpoint

    folder = tmp_path / "flare-office"
    shutil.copytree(demo / "checkpoints" / "flare-office", folder)
    card = (folder / "README.md").read_text()
    trained_on = card_training_data(card)[0]
    (folder / "README.md").write_text(card.replace(trained_on, "regen"))
    evals = tmp_path / "eval"
    shutil.copytree(demo / "eval", evals)
    results = json.loads((evals / "results.json").read_text())
    results["dataset"] = str(tmp_path / "private" / "regen")
    (evals / "results.json").write_text(json.dumps(results))

    repos = {(demo / "regen").resolve(): f"{ORG}/regen"}
    upload = plan_checkpoint(ORG, folder, repos, evals=[evals])
    released = upload.files["README.md"].decode()
    assert f"Data: `{ORG}/regen`, config `office`." in released
    assert f"regen train flare --dataset_name {ORG}/regen --dataset_config office" in released
    assert f"regen predict --model {ORG}/regen-flare-office --dataset_name {ORG}/regen" in released
    assert f'"dataset_name": "{ORG}/regen"' in released
    assert f"`regen eval` on `{ORG}/regen`, test split" in released  # the same dataset
    for command in ("train", "predict", "eval", "command"):
        assert (
            f"{ORG}/regen {command}" not in released and f"{ORG}/regen` {command}" not in released
        )
    assert "with the `regen` command:" in released
    assert CITATION.strip() in released and str(tmp_path) not in released


def test_broken_json_in_a_released_folder_is_an_error_naming_the_file(demo, tmp_path, capsys):
    folder = tmp_path / "flare-office"
    shutil.copytree(demo / "checkpoints" / "flare-office", folder)
    evals = tmp_path / "eval"
    shutil.copytree(demo / "eval", evals)
    results = json.loads((evals / "results.json").read_text())
    del results["runs"][0]["model"]
    (evals / "results.json").write_text(json.dumps(results))
    arguments = ["release", "--org", ORG, "--checkpoint", str(folder), "--eval", str(evals)]
    with pytest.raises(SystemExit):
        cli.main([*arguments, "--no-space", "--no-metric", "--dry-run"])
    error = capsys.readouterr().err
    assert f"{evals / 'results.json'}: run 0 names no model and config" in error
    assert "Traceback" not in error
    (folder / "config.json").write_text('{"model_type": "flare",\n')
    with pytest.raises(SystemExit):
        cli.main([*arguments, "--no-space", "--no-metric", "--dry-run"])
    error = capsys.readouterr().err
    assert f"{folder / 'config.json'}: not valid JSON" in error and "Traceback" not in error


def fake_checkpoint(folder: Path, config: dict, dataset: Path, **card) -> Path:
    """A checkpoint folder with placeholder weights and a card as training writes it."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"x")
    (folder / VOCABULARY_FILE).write_bytes(b"x")
    write_model_card(
        folder, model_name=card.pop("model_name", "FLARE"), script="training/train_flare.py",
        dataset_name=str(dataset), dataset_config="office", arguments=card.pop("arguments", {}),
        metrics={"NDCG@10": 0.3}, metrics_split="test", **card,
    )  # fmt: skip
    return folder


def test_a_local_base_reaches_no_published_file_and_gemma_weights_keep_its_licence(tmp_path):
    from training.release import plan_checkpoint

    base = "/home/Alice Smith/models/gemma-3-270m"  # a space, as in macOS home folders
    lumen = fake_checkpoint(
        tmp_path / "lumen-office",
        {"model_type": "lumen", "base_model": base, "text_config": {"model_type": "gemma3_text"}},
        tmp_path / "regen",
        model_name="LUMEN",
        arguments={"model": {"base_model": base}},
        options=f"--config training/recipes/lumen/cpu.yaml --base_model '{base}'",  # shlex
        description=f"LUMEN on `{base}`",
    )
    upload = plan_checkpoint(ORG, lumen, {})
    for name, content in upload.files.items():
        text = content if isinstance(content, bytes) else content.read_bytes()
        assert b"Alice Smith" not in text, name
    card = upload.files["README.md"].decode()
    assert "LUMEN on `gemma-3-270m`" in card and header(card.encode())["license"] == "gemma"
    assert json.loads(upload.files["config.json"])["base_model"] == "gemma-3-270m"
    assert "https://arxiv.org/abs/" in card  # links keep their paths


def test_only_a_checkpoint_of_synthetic_data_is_marked_so(tmp_path):
    from training.model_card import SYNTHETIC_NOTE

    synthetic = build_sample_folder(tmp_path / "demo_out" / "regen")
    real = tmp_path / "data" / "regen-real"
    real.mkdir(parents=True)
    (real / "build_report.json").write_text(json.dumps({"synthetic": False}))
    flare = fake_checkpoint(tmp_path / "ckpt" / "flare-office", {"model_type": "flare"}, real)
    uploads = plan_release(ORG, Sources(datasets=[synthetic], checkpoints=[flare]))
    (model,) = [u for u in uploads if u.repo_type == "model"]
    assert SYNTHETIC_NOTE not in model.files["README.md"].decode()


def test_hidden_leftovers_and_links_in_a_demo_folder(tmp_path):
    from training.release import demo_sources

    demo = tmp_path / "demo_out"
    build = build_sample_folder(tmp_path / "builds" / "regen-2025-06")
    demo.mkdir()
    (demo / "regen").symlink_to(build)  # released under the name the Space looks for
    shutil.copytree(build, demo / ".regen.push-999999999")  # a killed push's view
    sources = demo_sources(demo)
    assert [p.name for p in sources.datasets] == ["regen"]
    assert [u.repo_id for u in plan_release(ORG, sources)] == [f"{ORG}/regen"]


def test_the_space_header_names_this_releases_repositories_only(tmp_path):
    space = tmp_path / "space"
    space.mkdir()
    (space / "README.md").write_text(
        "---\nsdk: gradio\nmodels: [regen-benchmark/regen-flare-office]\n"
        "datasets: [regen-benchmark/regen]\n---\n# Space\n"
    )
    upload = plan_space(f"{ORG}/regen-space", space, [f"{ORG}/regen-flare-office"], [])
    metadata = header(upload.files["README.md"])
    assert metadata["models"] == [f"{ORG}/regen-flare-office"] and "datasets" not in metadata


def test_a_narrator_card_shows_the_runs_of_its_own_category(tmp_path):
    from training.release import plan_checkpoint

    data = tmp_path / "demo_out" / "regen"
    data.mkdir(parents=True)
    narrator = tmp_path / "narrator-office"
    narrator.mkdir()
    (narrator / "narrator_config.json").write_text("{}")
    (narrator / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "x"}))
    (narrator / "adapter_model.safetensors").write_bytes(b"x")
    write_model_card(
        narrator, model_name="Narrator", script="training/train_narrator.py",
        dataset_name=str(data), dataset_config="office", arguments={},
        metrics={"train_loss": 1.0}, metrics_split="validation", library_name="peft",
    )  # fmt: skip

    def run(config, bleu):
        return {"model": "hybrid", "config": config, "ranking": {"Recall@10": 0.1},
                "text": {"purchase_reason": {"BLEU": bleu, "skipped": 0}}, "users": 10}  # fmt: skip

    evals = tmp_path / "eval"
    evals.mkdir()
    runs = [run("office", 11.0), run("office_no_critique", 12.0), run("clothing", 99.0)]
    payload = {"dataset": str(data), "split": "test", "runs": runs}
    (evals / "results.json").write_text(json.dumps(payload))
    card = plan_checkpoint(ORG, narrator, {}, [evals]).files["README.md"].decode()
    assert "11.00" in card and "12.00" in card and "99.00" not in card
