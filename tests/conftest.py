"""Shared test helpers: release-format lines and the real fixtures in ../shared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each xdist worker takes one core: torch's default of one thread per core would make the
    # workers fight over the same cores (tiny models get many times slower).
    import torch

    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REGEN_SHARED", REPO.parent / "shared"))
REAL = SHARED / "fixtures" / "real"
SAMPLES = REPO / "regen_dataset" / "samples"


def build_sample_folder(out: Path, protocol: str = "leave_one_out") -> Path:
    """The shipped office and clothing samples built into a `load_dataset` folder at `out`."""
    from regen_dataset.export import build_folder

    sources = {c: [str(SAMPLES / f"{c}_synthetic.jsonl")] for c in ("office", "clothing")}
    build_folder(sources, out, protocol=protocol, progress=False)
    return out


def real_fixture(name: str) -> Path:
    """A file of ../shared/fixtures/real, or skip: a user's clone does not have ../shared."""
    path = REAL / name
    if not path.exists():
        pytest.skip(
            f"real fixture {path} is absent (it lives in ../shared, outside the repository)"
        )
    return path


def entry(
    asin: str,
    t: int,
    *,
    category="Office Products - Paper - Notebooks - Spiral - Small",
    price=9.5,
    rating=5,
    critique=None,
    **extra,
) -> dict:
    out = {
        "item": {
            "asin": asin,
            "title": f"Item {asin}",
            "category": category,
            "description": f"About {asin}",
            "price": price,
        },
        "review": {
            "summary": f"Title {asin}",
            "rating": rating,
            "text": f"Review of {asin}",
            "timestamp": t,
        },
    }
    if critique is not None:
        out["critique"] = critique
    out.update(extra)
    return out


def user(user_id: str, n: int, **kwargs) -> dict:
    """A release line of a user with items `{user_id}-0` ... oldest first."""
    line = {
        "reviewer_id": user_id,
        "purchase_history": [entry(f"{user_id}-{i}", 1_400_000_000 + 86_400 * i) for i in range(n)],
        "last_purchase": {
            "reason": f"reason {user_id}",
            "explanation": f"explanation {user_id}",
            "endorsement": f"endorsement {user_id}",
        },
        "user": {
            "profile": f"profile {user_id}",
            "brief_summary": f"brief {user_id}",
            "long_summary": f"long {user_id}",
        },
        "metadata": {
            "user": {"veracity": 6, "confidence": 7},
            "example": {"richness": 5, "confidence": 6},
        },
    }
    line.update(kwargs)
    return line


def write_lines(path: Path, lines: list) -> Path:
    """Write dicts as JSON lines; strings are written as they are (for malformed lines)."""
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


class WordCountEncoder:
    """A tiny deterministic sentence encoder for tests: hashed word counts, 64 dimensions."""

    def __init__(self):
        self.calls = 0
        self.texts = 0

    def encode(self, texts, output_value="sentence_embedding", **kwargs):
        """One vector per text, the sum of its words' one-hot hashes; with
        `output_value="token_embeddings"` (as sentence-transformers) those one-hot vectors, one
        per word, as a list of `[words, 64]` tensors."""
        import zlib

        import numpy as np
        import torch

        self.calls += 1
        self.texts += len(texts)
        tokens = []
        for text in texts:
            words = text.lower().split()
            one_hot = np.zeros((len(words), 64), dtype=np.float32)
            for position, word in enumerate(words):
                one_hot[position, zlib.crc32(word.encode()) % 64] = 1
            tokens.append(one_hot)
        if output_value == "token_embeddings":
            return [torch.from_numpy(one_hot) for one_hot in tokens]
        return np.stack([one_hot.sum(0) for one_hot in tokens]) if tokens else np.zeros((0, 64))


@pytest.fixture(scope="session")
def tiny_gemma_base(tmp_path_factory) -> Path:
    """A tiny random Gemma 3 with a small BPE tokenizer, saved as a base-model folder."""
    from tests.tiny_gemma import save_tiny_gemma

    return save_tiny_gemma(tmp_path_factory.mktemp("tiny-gemma") / "base")


@pytest.fixture
def alone_among_gemma_checkpoint_writers(tmp_path_factory):
    """Tests that write full checkpoints of the embedded Gemma (about 1 GB each, 2 GB at a
    time) take turns across the xdist workers, so the suite's peak disk use is one of them, not
    two. (xdist's `loadgroup` would do it, but it does not group under pytest 9.2.)"""
    import fcntl

    shared = tmp_path_factory.getbasetemp().parent  # every worker's basetemp is under it
    with open(shared / "embedded-gemma-checkpoints.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def launch_on_two_cpu_processes(script: Path, arguments: list, env: dict | None = None):
    """`script arguments` under `accelerate launch` on two CPU processes (gloo), as it runs on
    two GPUs. accelerate's `--cpu` starts several processes only through MPI, so this takes its
    torchrun path (`--multi_gpu`) and tells the Trainer `--use_cpu true`."""
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    result = subprocess.run(
        [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no",
         str(script), *map(str, arguments), "--use_cpu", "true"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env or {})},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("training on 2 processes (gloo)") == 1, result.stdout[-3000:]
    return result
