"""Benchmark: the share of valid JSON answers of the local backend, unconstrained vs constrained.

    python benchmarks/bench_local_json.py [--prompts 8] [--model embedded]

The local backend (by default the embedded Gemma 3 270M, a base model) answers the same real
pipeline prompts twice: free, then with decoding constrained to each task's JSON Schema
(`regen_dataset.inpaint.constrained`). An answer is valid when the pipeline's own parser for
the task accepts it; there are no repair calls here, only first answers. Tasks: critique
(`prompts.critique_prompt` on adjacent purchases), narratives (`prompts.narratives_prompt`) and
rating (the last-purchase auto-rater prompt on the sample's own purchase reason), each with the
pipeline's temperature and a bounded answer length (`--max-tokens`, CPU-friendly). Prompts are
built from the shipped SYNTHETIC office sample. Seconds per answer are wall time of
`backend.complete`; the one-off grammar compilation per task is reported apart.
Results go to stdout and bench_out/bench_local_json.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from regen_dataset.files import write_json  # noqa: E402
from regen_dataset.inpaint import prompts  # noqa: E402
from regen_dataset.inpaint.backends import LocalBackend  # noqa: E402
from regen_dataset.inpaint.constrained import (  # noqa: E402
    compile_schema,
    stop_token_ids,
    vocabulary_size,
)

SAMPLE = REPO / "regen_dataset" / "samples" / "office_synthetic.jsonl"
TEMPERATURES = {"critique": 1.0, "narratives": 0.7, "rating": 1.0}  # as the pipeline asks
DEFAULT_MAX_TOKENS = {"critique": 192, "narratives": 384, "rating": 64}


def task_prompts(count: int) -> dict[str, list[str]]:
    """`count` prompts per task from the first `count` sample users."""
    users = []
    with open(SAMPLE, encoding="utf-8") as handle:
        for line in handle:
            users.append(json.loads(line))
            if len(users) == count:
                break
    bare = [
        [{"item": e["item"], "review": e["review"]} for e in user["purchase_history"]]
        for user in users
    ]
    return {
        "critique": [prompts.critique_prompt(h[-2]["item"], h[-1]["item"]) for h in bare],
        "narratives": [prompts.narratives_prompt(h) for h in bare],
        "rating": [
            prompts.rater_prompt(
                "last_purchase",
                h,
                purchase_reason=user["last_purchase"]["reason"],
                purchase_reason_explanation=user["last_purchase"]["explanation"],
            )
            for h, user in zip(bare, users, strict=True)
        ],
    }


PARSERS: dict[str, Callable[[str], object]] = {
    "critique": prompts.parse_critiques,
    "narratives": prompts.parse_narratives,
    "rating": prompts.score_parser("last_purchase"),
}


def valid(task: str, text: str) -> bool:
    try:
        PARSERS[task](text)
    except ValueError:
        return False
    return True


def run(backend: LocalBackend, task: str, texts: list[str], max_tokens: int) -> dict:
    import torch

    answers, seconds, tokens = [], 0.0, 0
    for index, text in enumerate(texts):
        torch.manual_seed(index)  # the same sampling noise for both modes
        started = time.perf_counter()
        completion = asyncio.run(
            backend.complete(
                text,
                system=prompts.SYSTEM,
                temperature=TEMPERATURES[task],
                max_output_tokens=max_tokens,
                json_output=True,
            )
        )
        seconds += time.perf_counter() - started
        tokens += completion.output_tokens
        answers.append(completion.text)
    good = sum(valid(task, answer) for answer in answers)
    return {
        "valid": good,
        "answers": len(answers),
        "valid_share": good / len(answers),
        "seconds_per_answer": seconds / len(answers),
        "output_tokens_per_answer": tokens / len(answers),
        "first_answer": answers[0][:300],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=8, help="prompts per task")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--tasks", nargs="+", default=list(TEMPERATURES), choices=TEMPERATURES)
    parser.add_argument(
        "--max-tokens",
        type=json.loads,
        default=DEFAULT_MAX_TOKENS,
        help=f"answer token limit per task, as JSON (default {json.dumps(DEFAULT_MAX_TOKENS)})",
    )
    args = parser.parse_args()
    texts = task_prompts(args.prompts)
    free = LocalBackend(args.model, constrained_decoding=False)
    started = time.perf_counter()
    model, tokenizer = free._load()
    load_seconds = time.perf_counter() - started
    constrained = LocalBackend(args.model, loader=lambda name: (model, tokenizer))
    results: dict = {
        "model": args.model,
        "prompts_per_task": args.prompts,
        "max_tokens": args.max_tokens,
        "load_seconds": load_seconds,
        "tasks": {},
    }
    print(f"{'task':<11} {'mode':<13} {'valid':>7} {'share':>6} {'s/answer':>9} {'tok/answer':>10}")
    for task in args.tasks:
        schema = prompts.answer_schema(texts[task][0])
        started = time.perf_counter()
        compile_schema(
            tokenizer,
            schema,
            vocab_size=vocabulary_size(model),
            stop_token_ids=stop_token_ids(model, tokenizer),
        )
        entry = {"compile_seconds": time.perf_counter() - started}
        for mode, backend in (("unconstrained", free), ("constrained", constrained)):
            entry[mode] = outcome = run(backend, task, texts[task], args.max_tokens[task])
            print(
                f"{task:<11} {mode:<13} {outcome['valid']:>3}/{outcome['answers']:<3} "
                f"{outcome['valid_share']:>6.0%} {outcome['seconds_per_answer']:>9.2f} "
                f"{outcome['output_tokens_per_answer']:>10.1f}",
                flush=True,
            )
        print(f"{task:<11} grammar compiled once in {entry['compile_seconds']:.1f} s", flush=True)
        results["tasks"][task] = entry
    out = REPO / "bench_out" / "bench_local_json.json"
    out.parent.mkdir(exist_ok=True)
    write_json(out, results)
    print(f"model loaded in {load_seconds:.1f} s; results in {out}")


if __name__ == "__main__":
    main()
