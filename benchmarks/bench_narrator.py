"""Narrator benchmarks: training speed and memory, generation speed, and quality.

    # training: tokens per second and peak memory, LoRA against full fine-tuning, same batch
    python benchmarks/bench_narrator.py train-speed

    # the training loss on a CPU: TRL's fused LM head (every position) against the narrator's
    # (the completion's positions only), same batch, alternating
    python benchmarks/bench_narrator.py loss-head

    # generation: new tokens per second, batched against one user at a time
    python benchmarks/bench_narrator.py generation

    # quality on SYNTHETIC office users: the narrator after the cpu recipe (or --max-steps more),
    # the untuned base model and the nearest-neighbour baseline, on the first --users test users
    python benchmarks/bench_narrator.py quality --users 8 --max-steps 200

All on the embedded Gemma 3 270M on CPU. Results go to `bench_out/narrator/*.json` and are
printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path("bench_out/narrator")
SAMPLE = REPO / "regen_dataset" / "samples" / "office_synthetic.jsonl"
CPU_RECIPE = REPO / "training" / "recipes" / "narrator" / "cpu.yaml"


def _folder(protocol: str, path: Path, release: Path = SAMPLE) -> Path:
    from regen_dataset.export import build_folder

    if not (path / "README.md").exists():
        build_folder({"office": [str(release)]}, path, protocol=protocol, progress=False)
    return path


def _prompts(count: int, max_tokens: int, tokenizer) -> list[tuple[str, str]]:
    """(prompt, completion) pairs of the sample's first users, every narrative kind."""
    import datasets

    from regen_models.narrator import formatting
    from regen_models.prompts import build_prompt_completions

    folder = _folder("user_disjoint", OUT / "office_users")
    rows = datasets.load_dataset(str(folder), "office", split="train")
    pairs, _ = build_prompt_completions(
        rows.select(range(count)),
        with_critiques=True,
        count_tokens=formatting.prompt_token_counter(tokenizer),
        max_tokens=max_tokens,
    )
    return [(pair["prompt"], pair["completion"]) for pair in pairs]


# -- training speed ------------------------------------------------------------------------------


def _train_steps(variant: str, batch: int, max_tokens: int, steps: int) -> dict:
    """Runs in its own process, so that its peak memory is its own."""
    import torch

    from regen_models.narrator import formatting
    from regen_models.narrator.loading import add_lora, load_base

    torch.manual_seed(0)
    model, tokenizer = load_base("embedded")
    if variant == "lora":
        model = add_lora(model, "embedded", r=8, alpha=16)
    model.train()
    texts = [
        formatting.generation_text(tokenizer, prompt) + completion
        for prompt, completion in _prompts(batch, max_tokens, tokenizer)[:batch]
    ]
    encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    timings = []
    for step in range(steps + 1):
        started = time.perf_counter()
        loss = model(**encoded, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:  # the first step warms up
            timings.append(time.perf_counter() - started)
    tokens = int(encoded["attention_mask"].sum())
    return {
        "variant": variant,
        "trainable_parameters": sum(p.numel() for p in trainable),
        "batch_tokens": tokens,
        "tokens_per_second": round(tokens / (sum(timings) / len(timings)), 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def train_speed(args) -> None:
    results = []
    for variant in ("lora", "full"):
        command = [sys.executable, __file__, "_train-steps", variant, str(args.batch_size)]
        command += [str(args.max_prompt_tokens), str(args.steps)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    lora, full = results
    _save("train_speed", {"threads": _threads(), "runs": results})
    print("\n| training step | trainable parameters | tokens/s | peak memory |")
    print("| --- | ---: | ---: | ---: |")
    for run in results:
        print(
            f"| {run['variant']} | {run['trainable_parameters']:,} | "
            f"{run['tokens_per_second']:.0f} | {run['peak_rss_gb']:.2f} GB |"
        )
    print(
        f"\nLoRA / full: {lora['tokens_per_second'] / full['tokens_per_second']:.2f}x the "
        f"speed, {lora['peak_rss_gb'] / full['peak_rss_gb']:.2f}x the memory "
        f"({lora['batch_tokens']} tokens a batch)"
    )


def loss_head(args) -> None:
    """TRL's `SFTTrainer.compute_loss` against `NarratorTrainer.compute_loss`: forward and
    backward on the same batch (the `cpu` recipe's: one pair, 512 prompt tokens), alternating."""
    import torch
    from trl import SFTTrainer

    from regen_models.narrator.loading import add_lora, load_base
    from training import train_narrator

    torch.manual_seed(0)
    model, tokenizer = load_base("embedded")
    model = add_lora(model, "embedded", r=8, alpha=16)
    pairs = [
        {"prompt": prompt, "completion": completion}
        for prompt, completion in _prompts(args.batch_size, args.max_prompt_tokens, tokenizer)
    ][: args.batch_size]
    training_args = train_narrator.NarratorTrainingArguments(
        output_dir=str(OUT / "loss_head"), max_steps=1, eval_strategy="no", report_to=[]
    )
    trainer = train_narrator.make_trainer(model, tokenizer, pairs, None, training_args)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(pairs))])
    model.eval()  # no dropout: both see the same network and must give the same loss
    variants = {
        "TRL's fused LM head (every position)": lambda: SFTTrainer.compute_loss(
            trainer, model, dict(batch)
        ),
        "the narrator's (completion positions only)": lambda: trainer.compute_loss(
            model, dict(batch)
        ),
    }
    seconds = {name: [] for name in variants}
    losses = {}
    for step in range(args.steps + 1):
        for name, compute in variants.items():
            started = time.perf_counter()
            loss = compute()
            loss.backward()
            model.zero_grad()
            if step:  # the first step warms up
                seconds[name].append(time.perf_counter() - started)
            losses[name] = float(loss.detach())
    tokens = int(batch["attention_mask"].sum())
    scored = int((batch["labels"] != -100).sum())
    trl_name, ours_name = variants
    mean = {name: sum(times) / len(times) for name, times in seconds.items()}
    table = (
        f"{tokens} tokens, {scored} of them scored; mean of {args.steps} forward-backward "
        f"steps, {_threads()} threads\n\n"
        "| loss | seconds a step | loss value |\n| --- | ---: | ---: |\n"
        + "".join(f"| {name} | {mean[name]:.2f} | {losses[name]:.6f} |\n" for name in variants)
        + f"\nspeed-up: {mean[trl_name] / mean[ours_name]:.2f}x"
    )
    _save("loss_head", {"threads": _threads(), "seconds": seconds, "losses": losses,
                        "tokens": tokens, "scored": scored})  # fmt: skip
    print(table)


# -- generation speed ----------------------------------------------------------------------------


def generation(args) -> None:
    import torch

    from regen_models.narrator import Narrator, NarratorConfig
    from regen_models.narrator.configuration_narrator import base_signature
    from regen_models.narrator.loading import load_base

    model, tokenizer = load_base("embedded")
    model.eval()
    config = NarratorConfig(
        base_model="embedded",
        base_signature=base_signature(model.config),
        kinds=["purchase_reason"],
        max_new_tokens={"purchase_reason": args.new_tokens},
        max_prompt_tokens=args.max_prompt_tokens,
        with_critiques=True,
    )
    narrator = Narrator(model, tokenizer, config)
    prompts = [p for p, _ in _prompts(args.users, args.max_prompt_tokens, tokenizer)][: args.users]
    runs = {}
    for batch in (1, args.users):
        started = time.perf_counter()
        # Sampling off, no early stop: every run writes the same number of tokens.
        texts = narrator.generate(
            prompts,
            max_new_tokens=args.new_tokens,
            batch_size=batch,
            min_new_tokens=args.new_tokens,
        )
        seconds = time.perf_counter() - started
        runs[batch] = {
            "seconds": round(seconds, 2),
            "new_tokens_per_second": round(len(texts) * args.new_tokens / seconds, 1),
        }
    one, many = runs[1], runs[args.users]
    _save("generation", {"threads": torch.get_num_threads(), "users": args.users, "runs": runs})
    title = f"generation of {args.users} narratives x {args.new_tokens} tokens"
    print(f"\n| {title} | seconds | tokens/s |")
    print("| --- | ---: | ---: |")
    print(f"| one user at a time | {one['seconds']:.1f} | {one['new_tokens_per_second']:.1f} |")
    print(
        f"| batched ({args.users}) | {many['seconds']:.1f} | {many['new_tokens_per_second']:.1f} |"
    )
    print(f"\nbatched / one at a time: {one['seconds'] / many['seconds']:.2f}x faster")


# -- quality -------------------------------------------------------------------------------------


def quality(args) -> None:
    """Train with the cpu recipe (`--max-steps` overrides), predict the first N test users with the
    narrator writing about the true next item (the paper's setting), with the untuned base model
    under the same prompts, and score both beside the nearest-neighbour baseline."""
    import datasets

    from regen_models.narrator import Narrator
    from regen_models.predictions import write_predictions
    from regen_models.prompts import build_prompt
    from training import train_narrator
    from training.evaluate import run_table, write_baselines

    folder = _folder("user_disjoint", OUT / "office_users")
    adapter = OUT / "narrator-office"
    train_narrator.run(
        ["--config", str(CPU_RECIPE), "--dataset_name", str(folder), "--dataset_config",
         "office", "--output_dir", str(adapter), "--overwrite_output_dir", "true",
         "--max_steps", str(args.max_steps),
         "--eval_steps", str(args.max_steps), "--learning_rate", str(args.learning_rate),
         "--kinds", *args.kinds]
    )  # fmt: skip
    test = datasets.load_dataset(str(folder), "office", split="test").select(range(args.users))
    narrator = Narrator.from_pretrained(adapter)
    runs = write_baselines(folder, "office", "test", str(OUT / "predictions"))
    runs = [run for run in runs if run[0] == "nearest_neighbour"]
    timings = {}
    for name, tuned in (("narrator (cpu recipe)", True), ("base model, untuned", False)):
        narratives = {}
        started = time.perf_counter()
        for kind in narrator.kinds:
            prompts = [
                build_prompt(
                    row["history"], row["target"], kind, critique=row["critique"],
                    user_id=row["user_id"], count_tokens=narrator.count_prompt_tokens(),
                    max_tokens=narrator.max_prompt_tokens,
                ).text
                for row in test
            ]  # fmt: skip
            if tuned:
                narratives[kind] = narrator.generate(prompts, kind=kind)
            else:  # the same model with the LoRA layers switched off
                with narrator.model.disable_adapter():
                    narratives[kind] = narrator.generate(prompts, kind=kind)
        timings[name] = round(time.perf_counter() - started, 1)
        path = OUT / "predictions" / f"{name.split()[0]}.jsonl"
        write_predictions(
            path, test["user_id"], None, narratives, config="office", split="test",
            narrated_item="target",
        )  # fmt: skip
        runs.append((name, "office", str(path)))
    table = run_table(
        folder,
        "test",
        runs,
        str(OUT / "eval"),
        overwrite=True,
        first=args.users,
        log=lambda _: None,
    )
    _save(
        "quality",
        {
            "users": args.users,
            "max_steps": args.max_steps,
            "learning_rate": args.learning_rate,
            "kinds": args.kinds,
            "seconds": timings,
            "table": table,
        },
    )
    print(table)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _save(name: str, payload: dict) -> None:
    from regen_dataset.files import write_json

    OUT.mkdir(parents=True, exist_ok=True)
    write_json(OUT / f"{name}.json", payload)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_train-steps":
        variant, batch, max_tokens, steps = sys.argv[2:6]
        print(json.dumps(_train_steps(variant, int(batch), int(max_tokens), int(steps))))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    speed = commands.add_parser("train-speed")
    speed.add_argument("--batch-size", type=int, default=2)
    speed.add_argument("--max-prompt-tokens", type=int, default=512)
    speed.add_argument("--steps", type=int, default=3)
    speed.set_defaults(func=train_speed)
    head = commands.add_parser("loss-head")
    head.add_argument("--batch-size", type=int, default=1, help="the cpu recipe's")
    head.add_argument("--max-prompt-tokens", type=int, default=512)
    head.add_argument("--steps", type=int, default=3)
    head.set_defaults(func=loss_head)
    gen = commands.add_parser("generation")
    gen.add_argument("--users", type=int, default=8)
    gen.add_argument("--new-tokens", type=int, default=32)
    gen.add_argument("--max-prompt-tokens", type=int, default=512)
    gen.set_defaults(func=generation)
    good = commands.add_parser("quality")
    good.add_argument("--users", type=int, default=20)
    good.add_argument("--max-steps", type=int, default=200)
    good.add_argument("--learning-rate", type=float, default=1e-4, help="the cpu recipe's")
    good.add_argument(
        "--kinds", nargs="+", default=["purchase_reason", "product_endorsement"],
        help="narrative kinds to train on and score (the demo's two by default)",
    )  # fmt: skip
    good.set_defaults(func=quality)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
