"""`push_folder` and `regen dataset push` against a fake Hub on 127.0.0.1, fully offline.

The real huggingface_hub client does the push to `tests.fake_hub.FakeHub`, which keeps the
repository's files from commit to commit; the push runs in a subprocess (see that module).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub
import pytest

import regen_dataset.export as export
from regen_dataset.export import build_folder, find_sources, push_folder
from regen_dataset.schema import CONFIG_NAMES, SPLIT_NAMES
from tests.conftest import REPO, SAMPLES
from tests.fake_hub import TOKEN, FakeHub, hub_env, sha256

REPO_ID = "test-org/regen"
COMMIT_MESSAGE = "Upload REGEN dataset folder built with `regen dataset build`"
_CONSOLE_SCRIPT = Path(sys.executable).with_name("regen")
REGEN = (
    [str(_CONSOLE_SCRIPT)] if _CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "training.cli"]
)
PUSH_SCRIPT = (
    "import sys\n"
    "from regen_dataset.export import push_folder\n"
    "print(push_folder(sys.argv[1], sys.argv[2]))\n"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("push") / "regen"
    build_folder(find_sources([str(SAMPLES)]), out, progress=False)
    return out


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as hub:
        yield hub


@pytest.mark.parametrize("via", ["push_folder", "cli"])
def test_push_uploads_every_file(via: str, built: Path, hub: FakeHub, tmp_path: Path) -> None:
    if via == "push_folder":  # endpoint=None: the Hub of HF_ENDPOINT
        command = [sys.executable, "-c", PUSH_SCRIPT, str(built), REPO_ID]
        env = hub_env(tmp_path, hf_endpoint=hub.url)
    else:  # --endpoint must win over HF_ENDPOINT, a path the fake Hub answers with 404
        command = [*REGEN, "dataset", "push", "--folder", str(built), "--repo-id", REPO_ID]
        command += ["--endpoint", hub.url]
        env = hub_env(tmp_path, hf_endpoint=f"{hub.url}/not-this-endpoint")
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{hub.errors}\n{result.stdout}\n{result.stderr}"
    assert hub.errors == []
    assert TOKEN not in result.stdout + result.stderr
    assert f"{hub.url}/datasets/{REPO_ID}/commit/" in result.stdout

    (created,) = hub.created
    assert (created["organization"], created["name"], created["type"]) == (
        "test-org",
        "regen",
        "dataset",
    )
    assert created.get("visibility") != "private" and not created.get("private")
    api_calls = [(path, auth) for _, path, auth in hub.requests if not path.startswith("/lfs/")]
    assert api_calls and all(auth == f"Bearer {TOKEN}" for _, auth in api_calls)

    local = published_files(built)
    parquet = {path for path in local if path.endswith(".parquet")}
    assert {"README.md", "build_report.json"} < set(local)
    for config in CONFIG_NAMES:
        for split in SPLIT_NAMES:
            assert any(re.fullmatch(rf"data/{config}/{split}-.*\.parquet", p) for p in parquet)

    (commit,) = hub.commits
    assert commit.summary == COMMIT_MESSAGE
    assert commit.files.keys() == local.keys() and not commit.deleted
    for path, data in local.items():
        assert sha256(commit.files[path]) == sha256(data), path
    assert commit.lfs_paths == parquet  # the parquet bytes came through LFS PUTs, not the commit
    assert hub.lfs_objects.keys() == {sha256(local[path]) for path in parquet}
    assert not [p for p in os.listdir(built.parent) if ".push-" in p]  # the view is gone


def published_files(folder: Path) -> dict[str, bytes]:
    """What a push of `folder` to REPO_ID must leave on the Hub: its files, the README naming
    the repository."""
    files = {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }
    report = export.BuildReport.from_dict(json.loads(files["build_report.json"]))
    files["README.md"] = export.render_card(report, repo_id=REPO_ID).encode()
    return files


def test_a_rebuild_with_fewer_shards_leaves_no_stale_shard_and_no_local_path(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder pushed with two shards per split, rebuilt with one and pushed again: the Hub
    holds exactly the new folder. Before, the old `train-0000i-of-00002` files stayed and
    matched `train-*.parquet` beside the new shard, so every row was there twice."""
    office = (SAMPLES / "office_synthetic.jsonl").read_text().splitlines(keepends=True)
    sources = tmp_path / "sources"
    sources.mkdir()
    halves = [sources / "office_1.jsonl", sources / "office_2.jsonl"]
    halves[0].write_text("".join(office[:150]))
    halves[1].write_text("".join(office[150:]))
    out = tmp_path / "regen"
    env = hub_env(tmp_path, hf_endpoint=hub.url)

    def push() -> None:
        result = subprocess.run(
            [sys.executable, "-c", PUSH_SCRIPT, str(out), REPO_ID],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{hub.errors}\n{result.stdout}\n{result.stderr}"

    with monkeypatch.context() as patch:
        patch.setattr(export, "SHARD_BYTES", 1)  # a new shard for each block: one per file
        build_folder({"office": [str(p) for p in halves]}, out, progress=False)
    first = published_files(out)
    assert "data/office/train-00001-of-00002.parquet" in first
    push()
    assert hub.files == first

    (sources / "office.jsonl").write_text("".join(office))
    build_folder({"office": [str(sources / "office.jsonl")]}, out, overwrite=True, progress=False)
    second = published_files(out)
    assert "data/office/train-00000-of-00001.parquet" in second
    push()
    assert hub.errors == []
    assert hub.files.keys() == second.keys()  # exactly the new folder: no stale shard
    assert all(hub.files[path] == data for path, data in second.items())
    assert hub.commits[1].deleted == first.keys() - second.keys()
    assert {p for p in hub.commits[1].deleted if "-of-00002" in p} == hub.commits[1].deleted

    # No local path anywhere in what was published, and the card names the repository.
    for path, data in hub.files.items():
        text = data.decode("utf-8", errors="replace")
        assert str(tmp_path) not in text and os.path.expanduser("~") + "/" not in text, path
    report = json.loads(hub.files["build_report.json"])
    assert report["out"] == "regen" and report["sources"] == {"office": ["office.jsonl"]}
    assert report["read"]["office"]["files"] == ["office.jsonl"]
    card = hub.files["README.md"].decode()
    assert f'load_dataset("{REPO_ID}", "office")' in card and 'load_dataset("regen"' not in card


@pytest.mark.parametrize("present", [(), ("README.md",), ("data",)])
def test_push_refuses_a_folder_that_is_not_built(
    present: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "README.md" in present:
        (tmp_path / "README.md").write_text("# not a REGEN build\n")
    if "data" in present:
        (tmp_path / "data").mkdir()

    def no_client(*args: object, **kwargs: object) -> None:
        raise AssertionError("push_folder made a Hub client for a folder it should refuse")

    monkeypatch.setattr(huggingface_hub, "HfApi", no_client)
    with pytest.raises(FileNotFoundError, match="not a built REGEN folder"):
        push_folder(tmp_path, REPO_ID, token=TOKEN, endpoint="http://127.0.0.1:9")


@pytest.mark.parametrize("change", ["shard_missing", "stray_shard"])
def test_push_and_release_refuse_data_files_that_are_not_the_build_reports(
    change: str, built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from training.release import ReleaseError, plan_dataset

    folder = tmp_path / "regen"
    shutil.copytree(built, folder)
    shard = sorted((folder / "data" / "office").glob("train-*.parquet"))[0]
    if change == "shard_missing":
        shard.unlink()
        expected = f"data/office/{shard.name} is missing"
    else:
        shutil.copy(shard, shard.with_name("train-00007-of-00008.parquet"))
        expected = "data/office/train-00007-of-00008.parquet is not in the build report"

    def no_client(*args: object, **kwargs: object) -> None:
        raise AssertionError("push_folder made a Hub client for a folder it should refuse")

    monkeypatch.setattr(huggingface_hub, "HfApi", no_client)
    with pytest.raises(ValueError, match=re.escape(expected)):
        push_folder(folder, REPO_ID, token=TOKEN, endpoint="http://127.0.0.1:9")
    with pytest.raises(ReleaseError, match=re.escape(expected)):
        plan_dataset("test-org", folder)
    plan_dataset("test-org", built)  # the folder as built is fine
