"""Benchmark: parquet content-defined chunking (CDC) in the shard writer, off and on.

    python benchmarks/bench_parquet_cdc.py [--users 5000] [--extra 50] [--removed 3]

Builds the Office configs from a SYNTHETIC release file (realistic text lengths), once with
`use_content_defined_chunking` off and once on, then rebuilds both ways twice: with `--extra`
more users appended at the end (new data), and with `--removed` users removed, spread over the
file (a fix that drops a few bad users; each removal changes the data pages it falls in, so
this only tells something when removals are much rarer than pages). For each setting it reports:
- the build's wall time and the bytes of its parquet files;
- the share of `office_no_critique`'s bytes already present in `office` (the two configs hold the
  same rows, critiques apart), and the share of each rebuild's bytes already present in the first
  build: what the Hub's storage (Xet) would not upload again.

The Hub deduplicates with its own content-defined chunks of about 64 KiB; the shares here come
from the same kind of chunker (a gear rolling hash, 64 KiB average, 8 KiB minimum, 128 KiB
maximum), so they estimate what the Hub saves rather than measure it.
Results go to stdout and bench_out/bench_parquet_cdc.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
_GEAR = np.random.default_rng(0).integers(0, 2**63, 256, dtype=np.uint64) * np.uint64(2) + 1
_MASK = np.uint64(0xFFFF << 48)  # 16 high bits: a boundary every 64 KiB on average
_MIN_CHUNK, _MAX_CHUNK = 8 << 10, 128 << 10


def chunk_hashes(data: bytes) -> dict[bytes, int]:
    """Content-defined chunks of `data` (gear hash over the last 64 bytes): hash -> size."""
    gears = _GEAR[np.frombuffer(data, dtype=np.uint8)]
    rolling = np.zeros(len(gears), dtype=np.uint64)
    for shift in range(64):  # h_i = sum_j gear[b_(i-j)] << j, the hash after byte i
        rolling[shift:] += gears[: len(gears) - shift] << np.uint64(shift)
    candidates = np.flatnonzero((rolling & _MASK) == 0) + 1  # cut after these bytes
    chunks, start, index = {}, 0, 0
    while start < len(data):
        end = min(start + _MAX_CHUNK, len(data))
        while index < len(candidates) and candidates[index] < start + _MIN_CHUNK:
            index += 1
        if index < len(candidates) and candidates[index] <= end:
            end = int(candidates[index])
        chunks[hashlib.sha256(data[start:end]).digest()] = end - start
        start = end
    return chunks


def folder_chunks(directory: Path) -> dict[bytes, int]:
    chunks: dict[bytes, int] = {}
    for path in sorted(directory.rglob("*.parquet")):
        chunks.update(chunk_hashes(path.read_bytes()))
    return chunks


def shared_share(new: Path, old: Path) -> float:
    """Share of `new`'s parquet bytes (deduplicated) whose chunks `old` already holds."""
    new_chunks, old_chunks = folder_chunks(new), folder_chunks(old)
    total = sum(new_chunks.values())
    return sum(size for digest, size in new_chunks.items() if digest in old_chunks) / total


def build(source: Path, out: Path, cdc: bool) -> tuple[float, int]:
    import regen_dataset.export as export

    export._PARQUET_OPTIONS["use_content_defined_chunking"] = cdc
    started = time.perf_counter()
    export.build_folder({"office": [str(source)]}, out, overwrite=True, progress=False)
    seconds = time.perf_counter() - started
    size = sum(path.stat().st_size for path in (out / "data").rglob("*.parquet"))
    return seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--extra", type=int, default=50, help="users appended for a rebuild")
    parser.add_argument("--removed", type=int, default=3, help="users removed for a rebuild")
    args = parser.parse_args()
    from regen_dataset.synthetic import generate_release

    work = REPO / "bench_out" / "cdc"
    work.mkdir(parents=True, exist_ok=True)
    lines = list(generate_release("office", args.users + args.extra))
    step = args.users // max(args.removed, 1)
    sources = {
        "first": lines[: args.users],
        "appended": lines,
        "edited": [line for i, line in enumerate(lines[: args.users]) if i % step != step // 2],
    }
    for name, chosen in sources.items():
        (work / f"office_{name}.jsonl").write_text("\n".join(chosen) + "\n")
    first = work / "office_first.jsonl"
    print(f"source: {args.users:,} users, {first.stat().st_size / 1e6:.1f} MB of JSONL", flush=True)

    results: dict = {"users": args.users, "extra_users": args.extra}
    for cdc in (False, True):
        name = "cdc" if cdc else "plain"
        seconds, size = build(first, work / f"{name}_first", cdc)
        data = work / f"{name}_first" / "data"
        results[name] = {
            "build_seconds": round(seconds, 2),
            "parquet_MB": round(size / 1e6, 2),
            "no_critique_shared_with_office": round(
                shared_share(data / "office_no_critique", data / "office"), 3
            ),
        }
        for rebuild in ("appended", "edited"):
            out = work / f"{name}_{rebuild}"
            build(work / f"office_{rebuild}.jsonl", out, cdc)
            results[name][f"{rebuild}_rebuild_shared"] = round(shared_share(out / "data", data), 3)
        print(name, results[name], flush=True)
    os.makedirs(REPO / "bench_out", exist_ok=True)
    (REPO / "bench_out" / "bench_parquet_cdc.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
