"""Benchmark: building REGEN configs, against the pandas way public REGEN users load the files.

    python benchmarks/bench_build.py        # the paper's sizes: ~1 GB Office, ~13 GB Clothing
    python benchmarks/bench_build.py --office-users 2000 --clothing-users 5000 --pandas-users 2000

1. Writes SYNTHETIC release files with realistic text lengths (about 1 KB per interaction, 11 KB
   per user): Office (89,489 users) and Clothing (1,168,735 users) by default. Cached in bench_out/.
2. Times `build_folder` writing all four configs (office, office_no_critique, clothing,
   clothing_no_critique) from both files, in a fresh process, with its peak resident memory.
3. Side by side on the first `--pandas-users` users of the same Clothing file: our build of its two
   configs, and the pandas way: a Python loop of `json.loads` into a list of rows, a DataFrame, a
   groupby into per-user lists, leave-one-out splits by slicing, `to_parquet` of one config. The
   pandas way holds every review as a Python object (about 3.3 bytes of memory per byte of JSON),
   so the whole Clothing file (13 GB) does not fit in this machine's 24 GB: hence a prefix.
Results go to stdout and bench_out/bench_build.json.
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

    write_release(path, category, users, progress=True, workers=min(8, os.cpu_count() or 1))
    return time.perf_counter() - started


OUR_BUILD = """
from regen_dataset.export import build_folder
report = build_folder({sources}, "{out}", overwrite=True, progress=False)
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


def head(source: Path, target: Path, lines: int) -> None:
    if target.exists():
        return
    with open(source, "rb") as reader, open(f"{target}.partial", "wb") as writer:
        for _ in range(lines):
            writer.write(reader.readline())
    os.replace(f"{target}.partial", target)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--office-users", type=int, default=89_489)
    parser.add_argument("--clothing-users", type=int, default=1_168_735)
    parser.add_argument(
        "--pandas-users", type=int, default=300_000, help="prefix of the Clothing file"
    )
    parser.add_argument("--workdir", default=str(REPO / "bench_out"))
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": f"{os.cpu_count()} cores", "python": sys.version.split()[0]}

    office = work / f"office_synthetic_{args.office_users}.jsonl"
    clothing = work / f"clothing_synthetic_{args.clothing_users}.jsonl"
    results["synthesize_seconds"] = {
        office.name: round(synthesize(office, "office", args.office_users), 1),
        clothing.name: round(synthesize(clothing, "clothing", args.clothing_users), 1),
    }

    sources = {"office": [str(office)], "clothing": [str(clothing)]}
    seconds, peak, rows = run_measured(OUR_BUILD.format(sources=sources, out=work / "regen"))
    size = office.stat().st_size + clothing.stat().st_size
    results["build_all_configs"] = {
        "users": args.office_users + args.clothing_users,
        "input_gb": round(size / 1e9, 2),
        "configs": 4,
        "rows_written": int(rows),
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(peak, 2),
        "input_mb_per_s": round(size / 1e6 / seconds, 1),
    }
    print("our build, all four configs:", results["build_all_configs"], flush=True)

    prefix = work / f"clothing_synthetic_{args.clothing_users}_first_{args.pandas_users}.jsonl"
    head(clothing, prefix, args.pandas_users)
    ours, ours_peak, _ = run_measured(
        OUR_BUILD.format(sources={"clothing": [str(prefix)]}, out=work / "regen_prefix")
    )
    pandas_out = work / "pandas_prefix"
    pandas_out.mkdir(exist_ok=True)
    theirs, theirs_peak, _ = run_measured(PANDAS_WAY.format(source=prefix, out=pandas_out))
    results["side_by_side"] = {
        "file": prefix.name,
        "users": args.pandas_users,
        "file_gb": round(prefix.stat().st_size / 1e9, 2),
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
