"""Benchmark: users per second, calls and tokens of the whole inpainting pipeline against a
fixed-latency server.

    python benchmarks/bench_inpaint.py [--users 60] [--latency 0.2] [--concurrency 1 8 32 64]
        [--sampling candidates separate]

The real `openai` client (OpenAIBackend) talks to the loopback fake OpenAI server of the tests,
which answers every call after `--latency` seconds with a valid scripted answer: the time is
then set by how many calls the runner keeps in flight, which is what this measures. Each user
needs critiques for its similar adjacent pairs, narratives, an endorsement and seven auto-rater
samples per rated group. `--sampling candidates` asks for the seven samples in one request
(`n=7`, the input paid once); `separate` runs the server as one that ignores `n`, so that the
samples are asked one by one, each with its own seed (the input paid seven times), as before the
runner asked for candidates. Users are the shipped SYNTHETIC office sample with its critiques,
narratives and scores removed. Every run starts from an empty cache.
Results go to stdout and bench_out/bench_inpaint.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the fake server lives with the tests

from regen_dataset.files import write_json  # noqa: E402
from regen_dataset.inpaint.backends import make_backend  # noqa: E402
from regen_dataset.inpaint.pipeline import InpaintConfig, InpaintReport, inpaint  # noqa: E402
from regen_dataset.inpaint.runner import Runner  # noqa: E402
from tests.regen_dataset.inpaint.fake_servers import FakeOpenAI  # noqa: E402
from tests.regen_dataset.inpaint.scripted import scripted_answer  # noqa: E402


def bare_users(n: int) -> list[dict]:
    """Sample users reduced to what the raw Amazon reader produces: items and reviews."""
    users = []
    with open(REPO / "regen_dataset" / "samples" / "office_synthetic.jsonl") as handle:
        for line in handle:
            user = json.loads(line)
            history = [{"item": e["item"], "review": e["review"]} for e in user["purchase_history"]]
            users.append({"reviewer_id": user["reviewer_id"], "purchase_history": history})
            if len(users) == n:
                break
    return users


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per call")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument(
        "--sampling",
        nargs="+",
        choices=("candidates", "separate"),
        default=["candidates", "separate"],
        help="how the auto-rater's samples are asked for (see above)",
    )
    args = parser.parse_args()
    users = bare_users(args.users)
    os.environ["OPENAI_API_KEY"] = "sk-benchmark-not-a-secret"
    results = {"users": len(users), "latency_s": args.latency, "runs": []}
    with (
        FakeOpenAI(scripted_answer, delay=args.latency) as server,
        tempfile.TemporaryDirectory() as work,
    ):
        for sampling in args.sampling:
            server.candidates = sampling == "candidates"
            for concurrency in args.concurrency:
                backend = make_backend("openai", "gpt-4o-mini", base_url=server.base_url)
                runner = Runner(
                    backend,
                    Path(work) / f"cache_{sampling}_{concurrency}.sqlite",
                    concurrency=concurrency,
                    progress=False,
                )
                report = InpaintReport()
                config = InpaintConfig(chunk_users=len(users))
                started = time.perf_counter()
                done = list(inpaint(users, runner.run, config, report))
                seconds = time.perf_counter() - started
                assert len(done) == len(users) and not report.invalid, report.summary()
                run = {
                    "sampling": sampling,
                    "concurrency": concurrency,
                    "calls": runner.usage.calls,
                    "input_tokens": runner.usage.input_tokens,
                    "output_tokens": runner.usage.output_tokens,
                    "seconds": round(seconds, 1),
                    "users_per_s": round(len(users) / seconds, 2),
                    "calls_per_s": round(runner.usage.calls / seconds, 1),
                    "max_in_flight": server.max_in_flight,
                }
                server.max_in_flight = 0
                results["runs"].append(run)
                print(run, flush=True)
    write_json(REPO / "bench_out" / "bench_inpaint.json", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
