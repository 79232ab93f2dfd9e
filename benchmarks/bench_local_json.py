"""Benchmark: the share of valid JSON answers of the local model, unconstrained vs constrained.

    python benchmarks/bench_local_json.py [--prompts 8] [--model embedded] [--threads 1]

The local backend's model (by default the embedded Gemma 3 270M, a base model) answers the same
real pipeline prompts twice, with the backend's chat template and system prompt: free, then with
decoding constrained to each task's JSON Schema (`regen_dataset.inpaint.constrained`, the
logits processor the local backend adds to `generate`). An answer is valid when the pipeline's
own parser for the task accepts it; there are no repair calls here, only first answers. Tasks:
critique (`prompts.critique_prompt` on each user's last two purchases), narratives
(`prompts.narratives_prompt`) and rating (the last-purchase auto-rater prompt on the sample's own
purchase reason), each with the pipeline's temperature and a bounded answer length
(`--max-tokens`: CPU-friendly, below the pipeline's 512/1536/256, so an answer may be cut short).
The prompts of a task are generated as one left-padded batch (the backend answers one at a time;
batching keeps this benchmark short on a CPU): seconds per answer are the batch's wall time over
its size, the same for both modes. The one-off grammar compilation per task is reported apart.
Prompts come from the shipped SYNTHETIC office sample, each user's last three purchases.
Results go to stdout and bench_out/bench_local_json.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from regen_dataset.files import write_json  # noqa: E402
from regen_dataset.inpaint import prompts  # noqa: E402
from regen_dataset.inpaint.constrained import (  # noqa: E402
    compile_schema,
    json_schema_processors,
    stop_token_ids,
    vocabulary_size,
)
from regen_models.base import load_causal_lm  # noqa: E402

SAMPLE = REPO / "regen_dataset" / "samples" / "office_synthetic.jsonl"
TEMPERATURES = {"critique": 1.0, "narratives": 0.7, "rating": 1.0}  # as the pipeline asks
HISTORY = 3  # purchases per prompt
DEFAULT_MAX_TOKENS = {"critique": 160, "narratives": 384, "rating": 64}


def task_prompts(count: int) -> dict[str, list[str]]:
    """`count` prompts per task from the first `count` sample users."""
    users = []
    with open(SAMPLE, encoding="utf-8") as handle:
        for line in handle:
            users.append(json.loads(line))
            if len(users) == count:
                break
    bare = [  # the last purchases only: shorter prompts, a CPU-friendly prefill
        [{"item": e["item"], "review": e["review"]} for e in user["purchase_history"]][-HISTORY:]
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


def generate(model, tokenizer, task: str, texts: list[str], max_tokens: int, schema) -> dict:
    """One sampled batch of answers to `texts`; constrained to `schema` unless it is None."""
    import torch

    chats = [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": prompts.SYSTEM}, {"role": "user", "content": text}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for text in texts
    ]
    tokenizer.padding_side = "left"
    inputs = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
    extra = {}
    if schema is not None:
        extra["logits_processor"] = json_schema_processors(model, tokenizer, [schema])
    torch.manual_seed(0)  # the same sampling noise for both modes
    started = time.perf_counter()
    with torch.no_grad():
        output = model.generate(
            **inputs,
            do_sample=True,
            temperature=TEMPERATURES[task],
            max_new_tokens=max_tokens,
            pad_token_id=tokenizer.pad_token_id,
            **extra,
        )
    seconds = time.perf_counter() - started
    stops = set(stop_token_ids(model, tokenizer))
    answers, lengths, stopped = [], [], 0
    for row in output[:, inputs["input_ids"].shape[1] :].tolist():
        ends = [index for index, token in enumerate(row) if token in stops]
        stopped += bool(ends)  # the model ended its answer (else it hit the token limit)
        lengths.append(ends[0] + 1 if ends else len(row))
        answers.append(tokenizer.decode(row, skip_special_tokens=True))
    good = sum(valid(task, answer) for answer in answers)
    return {
        "valid": good,
        "answers": len(answers),
        "valid_share": good / len(answers),
        "stopped": stopped,
        "seconds_per_answer": seconds / len(answers),
        "output_tokens_per_answer": sum(lengths) / len(lengths),
        "answers_text": [answer[:400] for answer in answers],
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
        type=lambda text: {**DEFAULT_MAX_TOKENS, **json.loads(text)},
        default=DEFAULT_MAX_TOKENS,
        help=f"answer token limit per task, as JSON (default {json.dumps(DEFAULT_MAX_TOKENS)})",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = task_prompts(args.prompts)
    started = time.perf_counter()
    model, tokenizer = load_causal_lm(args.model)
    model.eval()
    load_seconds = time.perf_counter() - started
    results: dict = {
        "model": args.model,
        "prompts_per_task": args.prompts,
        "max_tokens": args.max_tokens,
        "torch_threads": torch.get_num_threads(),
        "load_seconds": load_seconds,
        "tasks": {},
    }
    print(
        f"{'task':<11} {'mode':<13} {'valid':>7} {'share':>6} {'stopped':>7} {'s/answer':>9} "
        f"{'tok/answer':>10}"
    )
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
        for mode, constraint in (("unconstrained", None), ("constrained", schema)):
            limit = args.max_tokens[task]
            entry[mode] = outcome = generate(model, tokenizer, task, texts[task], limit, constraint)
            print(
                f"{task:<11} {mode:<13} {outcome['valid']:>3}/{outcome['answers']:<3} "
                f"{outcome['valid_share']:>6.0%} {outcome['stopped']:>7} "
                f"{outcome['seconds_per_answer']:>9.2f} "
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
