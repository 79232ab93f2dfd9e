"""space/app.py on the Hub: repo ids from the organisation and the environment, downloads that
fail leave their model out; the Space's README carries the Spaces header."""

import importlib.util

import gradio
import pytest
import yaml

from tests.conftest import REPO
from training.space.hub import download, repo_ids


def test_repo_ids_follow_the_release_names_and_the_environment():
    datasets, checkpoints = repo_ids(
        "org", {"REGEN_FLARE_OFFICE_REPO": "me/my-flare", "REGEN_LUMEN_CLOTHING_REPO": ""}
    )
    assert datasets == ["org/regen-users", "org/regen"]  # test users no model trained on, first
    assert repo_ids("org", {"REGEN_DATASET_REPO": "me/data"})[0] == ["me/data"]
    assert checkpoints["office"]["flare"] == "me/my-flare"
    assert checkpoints["office"]["narrator"] == "org/regen-narrator-office"
    assert "lumen" not in checkpoints["clothing"]  # an empty value leaves it out


def load_app_module():
    spec = importlib.util.spec_from_file_location("space_app", REPO / "space" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hub_path_downloads_by_repo_id_and_notes_what_is_missing(
    tiny_demo, monkeypatch, tmp_path
):
    import huggingface_hub

    monkeypatch.chdir(tmp_path)  # the app writes its plots under the working directory

    hosted = {
        ("regen-benchmark/regen", "dataset"): tiny_demo / "regen",
        ("regen-benchmark/regen-flare-office", None): tiny_demo / "checkpoints" / "flare-office",
    }
    asked = []

    def snapshot_download(repo_id, repo_type=None, **kwargs):
        asked.append((repo_id, repo_type))
        if (repo_id, repo_type) not in hosted:
            raise LookupError(f"no {repo_id}")
        return str(hosted[(repo_id, repo_type)])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.delenv("REGEN_ORG", raising=False)
    app_module = load_app_module()
    blocks, app = app_module.hub_space()
    assert ("regen-benchmark/regen-narrator-office", None) in asked
    # regen-users is asked for first; without it, the leave-one-out build serves
    assert asked[:2] == [
        ("regen-benchmark/regen-users", "dataset"),
        ("regen-benchmark/regen", "dataset"),
    ]
    assert app.registry.names("office") == ["FLARE"]
    assert (
        "Hybrid (FLARE + narrator) (office): left out, no narrator checkpoint" in app.registry.notes
    )
    # The page says why: the download failed, not only that the checkpoint is missing.
    shown = " ".join(str(getattr(b, "value", "")) for b in blocks.blocks.values())
    assert "narrator (office): regen-benchmark/regen-narrator-office could not be loaded" in shown
    _, _, notes = download("regen-benchmark/regen", {"office": {"lumen": "x/y"}}, snapshot_download)
    assert notes == ["lumen (office): x/y could not be loaded (LookupError)"]
    with pytest.raises(RuntimeError, match="needs a REGEN dataset: dataset a/b could not be"):
        download(["a/b"], {}, snapshot_download)


def test_the_space_readme_has_the_spaces_header():
    text = (REPO / "space" / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(text.split("---")[1])
    assert header["sdk"] == "gradio" and header["sdk_version"] == gradio.__version__
    assert (REPO / "space" / header["app_file"]).is_file()
    assert header["models"] and header["datasets"] and header["license"] and header["title"]
    assert "(screenshot.png)" in text and (REPO / "space" / "screenshot.png").is_file()
    requirements = (REPO / "space" / "requirements.txt").read_text()
    assert f"gradio=={gradio.__version__}" in requirements
