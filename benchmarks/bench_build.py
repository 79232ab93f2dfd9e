"""Benchmark: building REGEN configs, against the pandas way public REGEN users load the files.

    python benchmarks/bench_build.py                      # Clothing size (1.17M users, ~13 GB)
    python benchmarks/bench_build.py --users 20000 --pandas-users 5000   # a quick look

1. Writes SYNTHETIC release files with realistic text lengths (about 1 KB per interaction): one
   of `--users` Clothing users and one of `--pandas-users` users (Office size by default).
2. Times `regen dataset build` (all four configs: two written per category file) on the
   Clothing-size file, each in a fresh process, with its peak resident memory.
3. On the smaller file, times side by side our build and the pandas way: a Python loop of
   `json.loads` into a list of rows, a DataFrame, a groupby into per-user lists, leave-one-out
   splits by slicing, and `to_parquet` of one config. The pandas way cannot hold the Clothing file
   in this machine's memory (every review becomes a Python object), hence the smaller file.
Results go to stdout and to bench_out/bench_build.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_measured(code: str) -> tuple[float, float, str]:
    """Run Python code in a fresh process: (seconds, peak RSS in GB, stdout)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    output = process.stdout.read()
    if status:
        raise RuntimeError(f"benchmark step failed ({status}):\n{code}\n{output}")
    return seconds, usage.ru_maxrss / 1024**2, output  # ru_maxrss is in KB on Linux


def synthesize(path: Path, category: str, users: int) -> float:
    if path.exists():
        return 0.0
    started = time.perf_counter()
    from regen_dataset.synthetic import write_release

    write_release(path, category, users, progress=True)
    return time.perf_counter() - started


OUR_BUILD = """
from regen_dataset.export import build_folder
report = build_folder({{"{category}": ["{source}"]}}, "{out}", overwrite=True, progress=False)
print(sum(sum(rows.values()) for rows in report.rows.values()))
"""

PANDAS_WAY = """
import json
import pandas as pd

rows = []
with open("{source}") as handle:
    for line in handle:
        user = json.loads(line)
        for entry in user["purchase_history"]:
            item, review = entry["item"], entry["review"]
            rows.append({{
                "user_id": user["reviewer_id"], "asin": item["asin"], "title": item["title"],
                "category": item["category"], "description": item["description"],
                "price": item["price"], "rating": review["rating"], "summary": review["summary"],
                "text": review["text"],
                "timestamp": review.get("timestamp", review.get("unix_time")),
                "critique": entry.get("critique"),
            }})
frame = pd.DataFrame(rows)
del rows
columns = [c for c in frame.columns if c != "user_id"]
users = frame.groupby("user_id", sort=False)[columns].agg(list)
history_columns = [c for c in columns]
for split, seen in (("train", 2), ("validation", 1), ("test", 0)):
    out = pd.DataFrame(index=users.index)
    for column in history_columns:
        values = users[column]
        out["history_" + column] = [v[: len(v) - seen - 1] for v in values]
        out["target_" + column] = [v[len(v) - seen - 1] for v in values]
    out.reset_index().to_parquet("{out}/" + split + ".parquet")
print(len(users))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--users", type=int, default=1_168_735, help="Clothing-size file (default: the paper's)"
    )
    parser.add_argument(
        "--pandas-users",
        type=int,
        default=89_489,
        help="file for the side-by-side (default: Office size)",
    )
    parser.add_argument("--workdir", default=str(REPO / "bench_out"))
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": f"{os.cpu_count()} cores", "python": sys.version.split()[0]}

    big = work / f"clothing_synthetic_{args.users}.jsonl"
    small = work / f"office_synthetic_{args.pandas_users}.jsonl"
    results["synthesize_seconds"] = {
        big.name: round(synthesize(big, "clothing", args.users), 1),
        small.name: round(synthesize(small, "office", args.pandas_users), 1),
    }

    seconds, peak, rows = run_measured(
        OUR_BUILD.format(category="clothing", source=big, out=work / "regen_clothing")
    )
    results["build_clothing"] = {
        "users": args.users,
        "file_gb": round(big.stat().st_size / 1e9, 2),
        "configs": 2,
        "rows_written": int(rows),
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(peak, 2),
        "input_mb_per_s": round(big.stat().st_size / 1e6 / seconds, 1),
    }
    print("our build, Clothing size:", results["build_clothing"], flush=True)

    ours, ours_peak, _ = run_measured(
        OUR_BUILD.format(category="office", source=small, out=work / "regen_office")
    )
    pandas_out = work / "pandas_office"
    pandas_out.mkdir(exist_ok=True)
    theirs, theirs_peak, _ = run_measured(PANDAS_WAY.format(source=small, out=pandas_out))
    results["side_by_side"] = {
        "users": args.pandas_users,
        "file_gb": round(small.stat().st_size / 1e9, 2),
        "ours": {"configs": 2, "seconds": round(ours, 1), "peak_rss_gb": round(ours_peak, 2)},
        "pandas": {"configs": 1, "seconds": round(theirs, 1), "peak_rss_gb": round(theirs_peak, 2)},
        "speedup": round(theirs / ours, 1),
        "memory_ratio": round(theirs_peak / ours_peak, 1),
    }
    print("side by side:", results["side_by_side"], flush=True)
    out = work / "bench_build.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
