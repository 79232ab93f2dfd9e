"""Benchmark: the nearest-neighbour baseline's search, the full matrix (before) and blockwise (now).

    python benchmarks/bench_baselines.py [--users 20000] [--dim 384] [--kinds 6] [--block 4096]

Side by side, in one run, on the same random unit vectors (leave-one-out: the pool is the
evaluated split itself, so every user must skip their own row), one search per narrative kind:
- full matrix: the search as `regen_models.baselines` did it before, a [users, users] float32
  similarity matrix, a [users, users] mask of same-user pairs, and a masked copy per kind;
- blockwise: `baselines.nearest_neighbours`, tiles of [block, block], each computed once for
  every kind.
Both must pick neighbours of the same similarity (checked; rows that differ by a float tie are
counted). Peak memory is the peak of Python's allocation
tracer (`tracemalloc`, which sees NumPy's buffers) above what the inputs already hold.
Results go to stdout and bench_out/bench_baselines.json.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np

from regen_dataset.files import write_json
from regen_models.baselines import nearest_neighbours

REPO = Path(__file__).resolve().parents[1]


def full_matrix(vectors, user_ids, has_reference):
    """The search before: every pair's similarity held at once (a copy of the old code)."""
    similarity = vectors @ vectors.T
    same_user = np.asarray(user_ids)[:, None] == np.asarray(user_ids)[None, :]
    similarity[same_user] = -np.inf
    return [
        np.where(reference[None, :], similarity, -np.inf).argmax(axis=1)
        for reference in has_reference
    ]


def blockwise(vectors, user_ids, has_reference, block):
    own = np.arange(len(user_ids))  # query i is pool row i
    return list(nearest_neighbours(vectors, vectors, own, np.stack(has_reference), block))


def measure(function) -> tuple[float, int, object]:
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return seconds, peak, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--kinds", type=int, default=6)
    parser.add_argument("--block", type=int, default=4096)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.users, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    user_ids = [f"A{i:013d}" for i in range(args.users)]
    # Each kind misses its reference on a different 5% of users, as real folders do.
    has_reference = [rng.random(args.users) >= 0.05 for _ in range(args.kinds)]

    rows = {}
    for name, function in (
        ("full matrix", lambda: full_matrix(vectors, user_ids, has_reference)),
        ("blockwise", lambda: blockwise(vectors, user_ids, has_reference, args.block)),
    ):
        seconds, peak, result = measure(function)
        rows[name] = {"seconds": round(seconds, 2), "peak_mib": round(peak / 2**20, 1)}
        rows[name]["neighbours"] = result
    differing = 0
    for before, now in zip(
        rows["full matrix"]["neighbours"], rows["blockwise"]["neighbours"], strict=True
    ):
        rows_apart = np.flatnonzero(before != now)
        differing += len(rows_apart)
        # Only a float tie (the two GEMMs sum in another order) may pick another neighbour.
        gap = np.abs(
            (vectors[rows_apart] * (vectors[before[rows_apart]] - vectors[now[rows_apart]])).sum(1)
        )
        if len(gap) and gap.max() > 1e-5:
            raise SystemExit("the two searches picked neighbours of different similarity")
    print(
        f"{args.users:,} users x {args.dim} dims, {args.kinds} narrative kinds, "
        f"block {args.block}; rows whose neighbour differs: {differing}"
    )
    print("| search | time (s) | peak memory (MiB) |\n|---|---|---|")
    for name, row in rows.items():
        row.pop("neighbours")
        print(f"| {name} | {row['seconds']:.2f} | {row['peak_mib']:,.1f} |")
    full, block = rows["full matrix"], rows["blockwise"]
    print(
        f"blockwise: {full['peak_mib'] / block['peak_mib']:.1f}x less memory, "
        f"{full['seconds'] / block['seconds']:.2f}x the speed"
    )
    payload = {**vars(args), "rows_whose_neighbour_differs": differing, "results": rows}
    write_json(REPO / "bench_out" / "bench_baselines.json", payload)


if __name__ == "__main__":
    main()
