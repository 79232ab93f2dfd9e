"""`push_folder` and `regen dataset push` against a fake Hub on 127.0.0.1, fully offline.

The real huggingface_hub client does the push; the fake Hub below implements only the requests
that `HfApi.create_repo` + `HfApi.upload_folder` make on a dataset repository, and keeps the
repository's files from commit to commit:

    POST /api/repos/create                                  create the repo
    GET  /api/datasets/ORG/NAME/tree/main?recursive=True    list the files (for deletions)
    POST /api/validate-yaml                                 check the README.md metadata
    POST /api/datasets/ORG/NAME/preupload/main              "regular" or "lfs", file by file
    POST /datasets/ORG/NAME.git/info/lfs/objects/batch      where to upload the LFS files
    PUT  /lfs/OID                                           the bytes of one LFS file
    POST /lfs/OID/verify                                    the client confirms the upload
    POST /api/datasets/ORG/NAME/commit/main                 the commit, as NDJSON

huggingface_hub reads HF_HUB_OFFLINE at import time and the test suite runs with HF_HUB_OFFLINE=1,
so the push runs in a subprocess with HF_HUB_OFFLINE=0 and HF_HOME in tmp_path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import huggingface_hub
import pytest

import regen_dataset.export as export
from regen_dataset.export import build_folder, find_sources, push_folder
from regen_dataset.schema import CONFIG_NAMES, SPLIT_NAMES
from tests.conftest import REPO, SAMPLES

TOKEN = "hf_test_token_not_a_secret"
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

Answer = tuple[int, dict[str, Any]]  # HTTP status and JSON body


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Commit:
    summary: str
    files: dict[str, bytes] = field(default_factory=dict)  # path in repo -> content
    lfs_paths: set[str] = field(default_factory=set)  # the files committed as LFS pointers
    deleted: set[str] = field(default_factory=set)


class FakeHub:
    """Answers the Hub requests of an upload and records what arrived."""

    def __init__(self) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.hub = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        self.errors: list[str] = []  # what a handler refused (the client then sees a 400)
        self.created: list[dict[str, Any]] = []  # payloads of /api/repos/create
        self.lfs_objects: dict[str, bytes] = {}  # sha256 hex -> bytes PUT by the client
        self.commits: list[Commit] = []
        self.files: dict[str, bytes] = {}  # the repository at the head of main
        repo = r"(?P<repo>[\w.-]+/[\w.-]+)"
        self.routes: list[tuple[str, str, Callable[..., Answer]]] = [
            ("POST", r"/api/repos/create", self.create_repo),
            ("GET", rf"/api/datasets/{repo}/tree/main", self.tree),
            ("POST", r"/api/validate-yaml", self.validate_yaml),
            ("POST", rf"/api/datasets/{repo}/preupload/main", self.preupload),
            ("POST", rf"/datasets/{repo}\.git/info/lfs/objects/batch", self.lfs_batch),
            ("PUT", r"/lfs/(?P<oid>[0-9a-f]{64})", self.lfs_put),
            ("POST", r"/lfs/(?P<oid>[0-9a-f]{64})/verify", self.lfs_verify),
            ("POST", rf"/api/datasets/{repo}/commit/main", self.commit),
        ]

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def create_repo(self, body: bytes) -> Answer:
        payload = json.loads(body)
        self.created.append(payload)
        return 200, {"url": f"{self.url}/datasets/{payload['organization']}/{payload['name']}"}

    def tree(self, body: bytes, repo: str) -> Answer | tuple[int, list[dict[str, Any]]]:
        return 200, [
            {"type": "file", "path": path, "size": len(data), "oid": sha256(data)[:40]}
            for path, data in sorted(self.files.items())
        ]

    def validate_yaml(self, body: bytes) -> Answer:
        return 200, {"errors": [], "warnings": []}

    def preupload(self, body: bytes, repo: str) -> Answer:
        # The real Hub answers from .gitattributes, whose defaults send *.parquet to LFS.
        files = [
            {
                "path": file["path"],
                "uploadMode": "lfs" if file["path"].endswith(".parquet") else "regular",
                "shouldIgnore": False,
            }
            for file in json.loads(body)["files"]
        ]
        return 200, {"files": files}

    def lfs_batch(self, body: bytes, repo: str) -> Answer:
        request = json.loads(body)
        assert request["operation"] == "upload" and "basic" in request["transfers"]
        objects = [
            {
                "oid": obj["oid"],
                "size": obj["size"],
                "actions": {  # no "chunk_size" header: one PUT per file (basic transfer)
                    "upload": {"href": f"{self.url}/lfs/{obj['oid']}"},
                    "verify": {"href": f"{self.url}/lfs/{obj['oid']}/verify"},
                },
            }
            for obj in request["objects"]
        ]
        return 200, {"transfer": "basic", "objects": objects}

    def lfs_put(self, body: bytes, oid: str) -> Answer:
        assert sha256(body) == oid, f"LFS bytes do not hash to {oid}"
        self.lfs_objects[oid] = body
        return 200, {}

    def lfs_verify(self, body: bytes, oid: str) -> Answer:
        request = json.loads(body)
        assert request["oid"] == oid and len(self.lfs_objects[oid]) == request["size"]
        return 200, {}

    def commit(self, body: bytes, repo: str) -> Answer:
        header, *operations = [json.loads(line) for line in body.splitlines() if line.strip()]
        assert header["key"] == "header"
        commit = Commit(summary=header["value"]["summary"])
        for operation in operations:
            value = operation["value"]
            if operation["key"] == "file":
                assert value["encoding"] == "base64"
                commit.files[value["path"]] = base64.b64decode(value["content"])
            elif operation["key"] == "lfsFile":
                data = self.lfs_objects[value["oid"]]  # KeyError: committed but never uploaded
                assert value["algo"] == "sha256" and len(data) == value["size"]
                commit.files[value["path"]] = data
                commit.lfs_paths.add(value["path"])
            elif operation["key"] == "deletedFile":
                assert value["path"] in self.files, f"deleting {value['path']}, not in the repo"
                commit.deleted.add(value["path"])
            else:
                raise AssertionError(f"unexpected commit operation {operation['key']!r}")
        self.commits.append(commit)
        for path in commit.deleted:
            del self.files[path]
        self.files.update(commit.files)
        return 200, {
            "commitUrl": f"{self.url}/datasets/{repo}/commit/{'a' * 40}",
            "commitOid": "a" * 40,
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: FakeHub


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

    def _answer(self) -> None:
        hub = self.server.hub
        body = self._read_body()
        path = urlsplit(self.path).path
        hub.requests.append((self.command, path, self.headers.get("Authorization")))
        status, answer = 404, {"error": f"fake Hub: no route for {self.command} {path}"}
        for method, pattern, handler in hub.routes:
            match = re.fullmatch(pattern, path)
            if method == self.command and match:
                try:
                    status, answer = handler(body, **match.groupdict())
                except Exception as error:  # a 400, not a dropped connection the client retries
                    hub.errors.append(f"{self.command} {path}: {error!r}")
                    status, answer = 400, {"error": repr(error)}
                break
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _answer

    def _read_body(self) -> bytes:
        # httpx sends a Content-Length even for the LFS PUT of a file object (it sizes the file).
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest's output quiet
        pass


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("push") / "regen"
    build_folder(find_sources([str(SAMPLES)]), out, progress=False)
    return out


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as hub:
        yield hub


def push_env(tmp_path: Path, hf_endpoint: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "HUGGING_FACE_")) and not key.lower().endswith("_proxy")
    }
    env.update(
        HF_HUB_OFFLINE="0",
        HF_ENDPOINT=hf_endpoint,
        HF_TOKEN=TOKEN,
        HF_HOME=str(tmp_path / "hf_home"),
        # hf_xet is installed, and with it upload_folder streams every file through the Xet
        # storage protocol (a CAS server, which the fake Hub is not). HF_HUB_DISABLE_XET=1 is the
        # documented switch back to the plain path: preupload, LFS batch + PUT, one commit.
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


@pytest.mark.parametrize("via", ["push_folder", "cli"])
def test_push_uploads_every_file(via: str, built: Path, hub: FakeHub, tmp_path: Path) -> None:
    if via == "push_folder":  # endpoint=None: the Hub of HF_ENDPOINT
        command = [sys.executable, "-c", PUSH_SCRIPT, str(built), REPO_ID]
        env = push_env(tmp_path, hf_endpoint=hub.url)
    else:  # --endpoint must win over HF_ENDPOINT, a path the fake Hub answers with 404
        command = [*REGEN, "dataset", "push", "--folder", str(built), "--repo-id", REPO_ID]
        command += ["--endpoint", hub.url]
        env = push_env(tmp_path, hf_endpoint=f"{hub.url}/not-this-endpoint")
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
    env = push_env(tmp_path, hf_endpoint=hub.url)

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
