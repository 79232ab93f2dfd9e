"""Benchmark: how long `regen` takes to answer, from a fresh interpreter, per command.

    python benchmarks/bench_cli.py [--before OLD_CHECKOUT] [--repeats 5]

Each command runs `python -c "from training.cli import main; main(ARGS)"` with `--help`, so the
time is the start-up (imports and parser) alone. With `--before`, the same commands from another
checkout of this repository (e.g. `git worktree add /tmp/old COMMIT`), alternating with this one,
in one run. Results go to stdout and bench_out/bench_cli.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [
    ["--help"],
    ["dataset", "build", "--help"],
    ["eval", "--help"],
    ["predict", "--help"],
    ["train", "flare", "--help"],
]


def seconds(tree: Path, argv: list[str]) -> float:
    code = f"from training.cli import main; main({argv!r})"
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout, timed side by side")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    trees = {"now": REPO} | ({"before": args.before.resolve()} if args.before else {})
    results = []
    for argv in COMMANDS:
        times = {name: [] for name in trees}
        for _ in range(args.repeats):
            for name, tree in trees.items():
                times[name].append(seconds(tree, argv))
        row = {"command": "regen " + " ".join(argv)}
        row |= {name: statistics.median(values) for name, values in times.items()}
        if "before" in row:
            row["ratio"] = row["before"] / row["now"]
        results.append(row)
        shown = ", ".join(
            f"{key} {value:.2f} s" if key != "ratio" else f"{value:.1f}x faster"
            for key, value in row.items()
            if key != "command"
        )
        print(f"{row['command']}: {shown}", flush=True)
    out = REPO / "bench_out" / "bench_cli.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"repeats": args.repeats, "results": results}, indent=2))


if __name__ == "__main__":
    main()
