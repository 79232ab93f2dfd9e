"""A fake Hugging Face Hub on 127.0.0.1: the real `huggingface_hub` client uploads to it and
downloads from it, fully offline.

It implements the requests that `HfApi.create_repo` + `HfApi.upload_folder` (and so
`push_to_hub`) make, for model, dataset and Space repositories, keeps the files from commit to
commit, and serves them back through `resolve/` URLs, so `from_pretrained(repo_id)` works against it:
    POST /api/repos/create                                  create the repo
    GET  /api/[models/|datasets/]ORG/NAME/revision/main     the commit of main (snapshot_download)
    GET  /api/[datasets/]ORG/NAME/tree/REV?recursive=True   list the files (deletions, snapshots)
    POST /api/validate-yaml                                 check the README.md metadata
    POST /api/spaces/ORG/NAME/variables                     set a Space's variable
    POST /api/[models/|datasets/]ORG/NAME/preupload/main    "regular" or "lfs", file by file
    POST /[datasets/]ORG/NAME.git/info/lfs/objects/batch    where to upload the LFS files
    PUT  /lfs/OID                                           the bytes of one LFS file
    POST /lfs/OID/verify                                    the client confirms the upload
    POST /api/[models/|datasets/]ORG/NAME/commit/main       the commit, as NDJSON
    HEAD/GET /[datasets/]ORG/NAME/resolve/main/PATH         a file of the repository
`files` holds what was committed to any repository (one FakeHub per repository keeps it simple);
`repo_files` keeps each repository apart ("ORG/NAME", "datasets/ORG/NAME", "spaces/ORG/NAME"), and
listings, deletions and downloads answer from the repository asked for.

huggingface_hub reads HF_HUB_OFFLINE at import time and the test suite runs with HF_HUB_OFFLINE=1,
so a client runs in a subprocess with `hub_env(...)`: HF_HUB_OFFLINE=0 and HF_HOME in a temporary
folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

TOKEN = "hf_test_token_not_a_secret"
Answer = tuple[int, dict[str, Any]]  # HTTP status and JSON body
LFS_SUFFIXES = (".parquet", ".safetensors", ".bin", ".pt")
HEAD = "a" * 40  # the commit every repository's main is at


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Commit:
    summary: str
    files: dict[str, bytes] = field(default_factory=dict)  # path in repo -> content
    lfs_paths: set[str] = field(default_factory=set)  # the files committed as LFS pointers
    deleted: set[str] = field(default_factory=set)
    repo: str = ""  # "ORG/NAME" for a model, "datasets/ORG/NAME" or "spaces/ORG/NAME"


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
        self.files: dict[str, bytes] = {}  # every repository at the head of main, together
        self.repo_files: dict[str, dict[str, bytes]] = {}  # each repository at the head of main
        self.repos: set[str] = set()  # the repositories committed to
        self.space_variables: dict[str, dict[str, str]] = {}  # "ORG/NAME" -> key -> value
        # A dataset or Space repo's paths have a "datasets/" or "spaces/" prefix; a model's none
        # (its API paths say "models/").
        repo = r"(?P<kind>datasets/|spaces/)?(?P<repo>[\w.-]+/[\w.-]+)"
        api = r"/api/(?P<kind>models/|datasets/|spaces/)?(?P<repo>[\w.-]+/[\w.-]+)"
        self.routes: list[tuple[str, str, Callable[..., Answer]]] = [
            ("POST", r"/api/repos/create", self.create_repo),
            ("GET", rf"{api}/revision/main", self.revision),
            ("GET", rf"{api}/tree/(?:main|{HEAD})", self.tree),
            ("POST", r"/api/validate-yaml", self.validate_yaml),
            ("POST", r"/api/spaces/(?P<repo>[\w.-]+/[\w.-]+)/variables", self.space_variable),
            ("POST", rf"{api}/preupload/main", self.preupload),
            ("POST", rf"/{repo}\.git/info/lfs/objects/batch", self.lfs_batch),
            ("PUT", r"/lfs/(?P<oid>[0-9a-f]{64})", self.lfs_put),
            ("POST", r"/lfs/(?P<oid>[0-9a-f]{64})/verify", self.lfs_verify),
            ("POST", rf"{api}/commit/main", self.commit),
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
        prefix = {"dataset": "datasets/", "space": "spaces/"}.get(payload.get("type"), "")
        return 200, {"url": f"{self.url}/{prefix}{payload['organization']}/{payload['name']}"}

    def revision(self, body: bytes, repo: str, kind: str | None = None) -> Answer:
        key = _repo_key(kind, repo)
        if key not in self.repo_files:
            return 404, {"error": f"fake Hub: no repository {key}"}
        return 200, {"id": repo, "sha": HEAD}

    def tree(
        self, body: bytes, repo: str, kind: str | None = None
    ) -> Answer | tuple[int, list[dict[str, Any]]]:
        files = self.repo_files.get(_repo_key(kind, repo), {})
        return 200, [
            {"type": "file", "path": path, "size": len(data), "oid": sha256(data)[:40]}
            for path, data in sorted(files.items())
        ]

    def space_variable(self, body: bytes, repo: str) -> Answer:
        payload = json.loads(body)
        variables = self.space_variables.setdefault(repo, {})
        variables[payload["key"]] = payload["value"]
        return 200, {key: {"value": value} for key, value in variables.items()}

    def validate_yaml(self, body: bytes) -> Answer:
        return 200, {"errors": [], "warnings": []}

    def preupload(self, body: bytes, repo: str, kind: str | None = None) -> Answer:
        # The real Hub answers from .gitattributes, whose defaults send these to LFS.
        files = [
            {
                "path": file["path"],
                "uploadMode": "lfs" if file["path"].endswith(LFS_SUFFIXES) else "regular",
                "shouldIgnore": False,
            }
            for file in json.loads(body)["files"]
        ]
        return 200, {"files": files}

    def lfs_batch(self, body: bytes, repo: str, kind: str | None = None) -> Answer:
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

    def commit(self, body: bytes, repo: str, kind: str | None = None) -> Answer:
        header, *operations = [json.loads(line) for line in body.splitlines() if line.strip()]
        assert header["key"] == "header"
        key = _repo_key(kind, repo)
        files = self.repo_files.setdefault(key, {})
        commit = Commit(summary=header["value"]["summary"], repo=key)
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
                assert value["path"] in files, f"deleting {value['path']}, not in the repo"
                commit.deleted.add(value["path"])
            else:
                raise AssertionError(f"unexpected commit operation {operation['key']!r}")
        self.commits.append(commit)
        self.repos.add(repo)
        for path in commit.deleted:
            del files[path]
            self.files.pop(path, None)
        files.update(commit.files)
        self.files.update(commit.files)
        return 200, {
            "commitUrl": f"{self.url}/{'' if kind == 'models/' else kind or ''}{repo}/commit/{HEAD}",
            "commitOid": HEAD,
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

    def do_GET(self) -> None:
        if not self._download(head=False):
            self._answer()

    def do_HEAD(self) -> None:
        if not self._download(head=True):
            self._answer()

    do_POST = do_PUT = _answer

    def _download(self, head: bool) -> bool:
        """Serve `/[datasets/]ORG/NAME/resolve/REVISION/PATH` from the head of main, with the
        headers `hf_hub_download` reads (commit, ETag, size). False if not such a request."""
        hub = self.server.hub
        match = re.fullmatch(
            r"/(?P<kind>datasets/|spaces/)?(?P<repo>[\w.-]+/[\w.-]+)/resolve/[^/]+/(?P<file>.+)",
            urlsplit(self.path).path,
        )
        if not match:
            return False
        hub.requests.append((self.command, urlsplit(self.path).path, None))
        files = hub.repo_files.get(_repo_key(match["kind"], match["repo"]), {})
        data = files.get(unquote(match["file"]))
        if data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        self.send_response(200)
        self.send_header("X-Repo-Commit", HEAD)
        self.send_header("ETag", f'"{sha256(data)}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)
        return True

    def _read_body(self) -> bytes:
        # httpx sends a Content-Length even for the LFS PUT of a file object (it sizes the file).
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest's output quiet
        pass


def _repo_key(kind: str | None, repo: str) -> str:
    return f"{'' if kind in (None, 'models/') else kind}{repo}"


def hub_env(tmp_path: Path, hf_endpoint: str) -> dict[str, str]:
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
