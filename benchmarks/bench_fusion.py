"""Fusion narrator benchmarks: the signal ablation, and the soft-token prompt's cost against the
text prompt of the same history.

    # (a) the ablation of "Beyond Retrieval" (CF / content / CF + content) on the SYNTHETIC
    # samples, built user-disjoint, with the cpu recipe (embedded Gemma 3 270M on CPU)
    python benchmarks/bench_fusion.py ablation --configs office clothing --users 20 --max-steps 32

    # (b) input tokens and generation time per user: soft tokens against the history prompt
    python benchmarks/bench_fusion.py prompt-cost --users 8 --new-tokens 32

(b) reads the first --users test users of the office sample. The soft-token input is the
begin-of-sequence token, one token per purchase and the target (and a user token first where the
model has one: off by default), then the fixed
task prompt; the text input is `build_prompt` of the same history and target (every purchase
block, no token budget) in the chat template. Both are decoded by the same greedy loop for exactly
--new-tokens tokens (no early stop), one user at a time, on the same LM (an untrained fusion
model: training changes no cost). Results go to `bench_out/fusion/*.json`, printed as Markdown.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path("bench_out/fusion")
SAMPLES = REPO / "regen_dataset" / "samples"
CPU_RECIPE = REPO / "training" / "recipes" / "fusion" / "cpu.yaml"


def _folder() -> Path:
    from regen_dataset.export import build_folder

    path = OUT / "regen-users"
    if not (path / "README.md").exists():
        sources = {c: [str(SAMPLES / f"{c}_synthetic.jsonl")] for c in ("office", "clothing")}
        build_folder(sources, path, protocol="user_disjoint", progress=False)
    return path


# -- (a) the ablation ------------------------------------------------------------------------------


def ablation(args) -> dict:
    from training.fusion_ablation import run_ablation

    folder = _folder()
    extra = ["--max_steps", str(args.max_steps)] + (
        ["--base_model", args.base_model] if args.base_model else []
    )
    started = time.perf_counter()
    text = run_ablation(
        str(folder),
        args.configs,
        str(CPU_RECIPE),
        OUT / "ablation",
        first=args.users,
        train_args=extra,
        max_new_tokens=args.max_new_tokens,
    )
    seconds = time.perf_counter() - started
    print(text)
    print(f"\n{seconds:.0f} s for {len(args.configs)} configs x 3 variants")
    return {"seconds": seconds, "table": text}


# -- (b) the prompt's cost -----------------------------------------------------------------------


def _greedy(language_model, embeddings, new_tokens: int) -> float:
    """Seconds to decode exactly `new_tokens` tokens greedily after one unpadded input."""
    import torch

    from regen_models.decoding import run_decoder

    decoder = language_model.get_decoder()
    embed = language_model.get_input_embeddings()
    head = language_model.get_output_embeddings()
    started = time.perf_counter()
    with torch.no_grad():
        cache, length = None, embeddings.shape[1]
        positions = torch.arange(length)[None]
        for _ in range(new_tokens):
            out, cache = run_decoder(
                decoder, cache, inputs_embeds=embeddings, position_ids=positions, use_cache=True
            )
            token = head(out.last_hidden_state[:, -1]).argmax(dim=-1)
            embeddings = embed(token[:, None])
            positions = torch.tensor([[length]])
            length += 1
    return time.perf_counter() - started


def prompt_cost(args) -> dict:
    import datasets
    import torch

    from regen_models.base import EMBEDDED
    from regen_models.fusion import FusionForCausalLM, wals
    from regen_models.fusion.data import FusionCollator, FusionEncoder, item_content_table
    from regen_models.items import ItemVocabulary
    from regen_models.narrator import formatting
    from regen_models.narrator.loading import load_base
    from regen_models.prompts import build_prompt

    torch.manual_seed(0)
    folder = _folder()
    splits = datasets.load_dataset(str(folder), "office")
    vocabulary = ItemVocabulary.from_dataset(str(folder), "office")
    settings = wals.WalsSettings(dim=32)
    factors, _ = wals.item_factors(splits["train"], vocabulary, settings)
    language_model, tokenizer = load_base(args.base_model or EMBEDDED)
    model = FusionForCausalLM.from_base(
        language_model,
        tokenizer,
        num_items=len(vocabulary),
        cf_factors=factors,
        content_vectors=item_content_table(vocabulary, progress=False),
        signals="both",
        adapter="mlp",
    ).eval()
    model.attach_item_vocabulary(vocabulary)
    encoder = FusionEncoder(tokenizer, vocabulary)
    collate = FusionCollator(tokenizer.pad_token_id)
    rows = splits["test"].select(range(min(args.users, len(splits["test"])))).to_list()
    kind = "purchase_reason"
    soft_tokens, text_tokens, soft_seconds, text_seconds = [], [], [], []
    _greedy(language_model, language_model.get_input_embeddings()(torch.tensor([[2, 3]])), 2)
    for row in rows:
        batch = collate([encoder.generation_example(row, kind)])
        with torch.no_grad():
            embeddings, _, _, _ = model.embed(
                batch["input_ids"], batch["attention_mask"], batch["item_ids"]
            )
        prompt = build_prompt(
            row["history"], row["target"], kind, critique=row["critique"], user_id=row["user_id"]
        )
        ids = torch.tensor([formatting.encode_for_generation(tokenizer, prompt.text)])
        with torch.no_grad():
            text_embeddings = language_model.get_input_embeddings()(ids)
        soft_tokens.append(embeddings.shape[1])
        text_tokens.append(ids.shape[1])
        soft_seconds.append(_greedy(language_model, embeddings, args.new_tokens))
        text_seconds.append(_greedy(language_model, text_embeddings, args.new_tokens))
    result = {
        "base_model": args.base_model or EMBEDDED,
        "users": len(rows),
        "history_lengths": [len(row["history"]) for row in rows],
        "new_tokens": args.new_tokens,
        "soft_input_tokens_mean": statistics.mean(soft_tokens),
        "text_input_tokens_mean": statistics.mean(text_tokens),
        "soft_seconds_per_user": statistics.mean(soft_seconds),
        "text_seconds_per_user": statistics.mean(text_seconds),
    }
    result["input_token_ratio"] = (
        result["text_input_tokens_mean"] / result["soft_input_tokens_mean"]
    )
    result["time_ratio"] = result["text_seconds_per_user"] / result["soft_seconds_per_user"]
    print(
        f"| prompt | input tokens per user | seconds per user ({args.new_tokens} new tokens) |\n"
        "|---|---:|---:|\n"
        f"| soft tokens | {result['soft_input_tokens_mean']:.0f} | "
        f"{result['soft_seconds_per_user']:.2f} |\n"
        f"| text (build_prompt) | {result['text_input_tokens_mean']:.0f} | "
        f"{result['text_seconds_per_user']:.2f} |\n"
        f"| text / soft | {result['input_token_ratio']:.1f}x | {result['time_ratio']:.1f}x |\n\n"
        f"{len(rows)} office test users (SYNTHETIC sample), histories of "
        f"{min(result['history_lengths'])}-{max(result['history_lengths'])} purchases, "
        f"{result['base_model']} on {torch.get_num_threads()} CPU threads"
    )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_ablation = commands.add_parser("ablation", help="(a) the CF / content / both ablation")
    run_ablation.add_argument("--configs", nargs="+", default=["office"])
    run_ablation.add_argument("--users", type=int, default=20, help="test users scored")
    run_ablation.add_argument("--max-steps", type=int, default=32)
    run_ablation.add_argument("--base-model", default=None)
    run_ablation.add_argument(
        "--max-new-tokens", type=int, default=None, help="narrative limit (default: per kind)"
    )
    run_ablation.set_defaults(func=ablation)
    cost = commands.add_parser("prompt-cost", help="(b) soft tokens against the text prompt")
    cost.add_argument("--users", type=int, default=8)
    cost.add_argument("--new-tokens", type=int, default=32)
    cost.add_argument("--base-model", default=None)
    cost.set_defaults(func=prompt_cost)
    args = parser.parse_args(argv)
    result = args.func(args)
    OUT.mkdir(parents=True, exist_ok=True)
    from regen_dataset.files import write_json

    write_json(OUT / f"{args.command}.json", {"arguments": vars(args) | {"func": None}, **result})


if __name__ == "__main__":
    main()
