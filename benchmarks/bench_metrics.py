"""Benchmark: ranking metrics over a Clothing-size catalog (376,847 items), batch of 256 users.

    python benchmarks/bench_metrics.py [--items 376847] [--users 256] [--repeats 5]

Side by side, in one run, on the same random scores:
- ours: `target_ranks` (one batched comparison against each target's score) + `ranking_metrics`;
- topk: RecBole-style full sort, `torch.topk(k=10)` then a membership test (gives @10 metrics only,
  no MRR over the catalog);
- argsort loop: a Python loop over users, `numpy.argsort` of the whole catalog per user, as in
  many research scripts.
Results go to stdout and bench_out/bench_metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from regen_models.metrics import ranking_metrics, target_ranks

REPO = Path(__file__).resolve().parents[1]


def best_of(repeats: int, function) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result


def ours(scores, targets):
    return ranking_metrics(target_ranks(scores, targets))


def topk(scores, targets):
    top = scores.topk(10, dim=1).indices
    hit = top == targets.unsqueeze(1)
    found = hit.any(dim=1)
    position = hit.float().argmax(dim=1) + 1
    ndcg = torch.where(found, 1.0 / torch.log2(position.float() + 1), torch.zeros(len(targets)))
    return {"Recall@10": found.float().mean().item(), "NDCG@10": ndcg.mean().item()}


def argsort_loop(scores, targets):
    array, ranks = scores.numpy(), []
    for row, target in enumerate(targets.tolist()):
        order = np.argsort(-array[row], kind="stable")
        ranks.append(int(np.flatnonzero(order == target)[0]) + 1)
    return ranking_metrics(ranks)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=376_847)
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(args.users, args.items, generator=generator)
    targets = torch.randint(0, args.items, (args.users,), generator=generator)
    # Plant a signal for half of the users, so that there are hits to agree on.
    scores[torch.arange(0, args.users, 2), targets[::2]] += 4.5
    results = {"items": args.items, "users": args.users, "torch_threads": torch.get_num_threads()}
    for name, function, repeats in (
        ("ours", ours, args.repeats),
        ("topk", topk, args.repeats),
        ("argsort_loop", argsort_loop, 1),
    ):
        seconds, metrics = best_of(repeats, lambda f=function: f(scores, targets))
        results[name] = {
            "ms_per_batch": round(1000 * seconds, 1),
            "users_per_s": round(args.users / seconds),
            "Recall@10": metrics["Recall@10"],
        }
        print(name, results[name], flush=True)
    # The three must agree on the metric they share (no ties in continuous random scores).
    assert len({results[n]["Recall@10"] for n in ("ours", "topk", "argsort_loop")}) == 1
    results["speedup_vs_argsort_loop"] = round(
        results["argsort_loop"]["ms_per_batch"] / results["ours"]["ms_per_batch"], 1
    )
    results["speedup_vs_topk"] = round(
        results["topk"]["ms_per_batch"] / results["ours"]["ms_per_batch"], 1
    )
    out = REPO / "bench_out"
    os.makedirs(out, exist_ok=True)
    (out / "bench_metrics.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
