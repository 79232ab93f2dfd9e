"""LUMEN benchmarks: ranking cost and item-table memory at the Clothing catalog size, and the
overhead of LUMEN over its base LM.

    # top-10 over 376,847 items per user, and the item table's memory, full against factorised,
    # at the hidden sizes of Gemma 3 270M (640) and Gemma 2B (2,304)
    python benchmarks/bench_lumen.py ranking

    # a LUMEN training step (joint loss, forward and backward) against the base LM's plain
    # causal-LM step on the same tokens, and LUMEN's one-pass ranking against the base LM's
    # forward of the same prompt (embedded Gemma 3 270M by default)
    python benchmarks/bench_lumen.py overhead --base embedded --tokens 384 --repeats 3

    # how readily a trained checkpoint writes `ID: <start_of_item>` after the test prompts of a
    # built folder (mean log-probabilities), and how often writing had to force the switch
    python benchmarks/bench_lumen.py switch --model CKPT --dataset_name DIR --users 16

Timings are medians of interleaved repeats (the two sides alternate, so that a busy machine
slows both alike). Results go to `bench_out/lumen/*.json` and are printed as Markdown.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

OUT = Path("bench_out/lumen")
CLOTHING_ITEMS = 376_847


def _items_module(hidden: int, dim: int | None, num_items: int, device: str = "cpu"):
    from transformers import Gemma3TextConfig

    from regen_models.lumen.configuration_lumen import LumenConfig
    from regen_models.lumen.modeling_lumen import LumenItems

    config = LumenConfig(
        text_config=Gemma3TextConfig(hidden_size=hidden, num_hidden_layers=1),
        num_items=num_items,
        item_token_id=0,
        switch_token_id=1,
        item_embedding_dim=dim,
    )
    with torch.device(device):
        return LumenItems(config).eval()


def ranking(args) -> None:
    rows = []
    for hidden, model in ((640, "Gemma 3 270M"), (2304, "Gemma 2B")):
        for dim in (None, 256, 64):
            meta = _items_module(hidden, dim, args.items, device="meta")
            parameters = sum(p.numel() for p in meta.parameters())
            row = {
                "model": model,
                "hidden": hidden,
                "item_dim": dim or hidden,
                "parameters": parameters,
                "float32_MiB": parameters * 4 / 2**20,
                "bfloat16_MiB": parameters * 2 / 2**20,
            }
            if hidden == 640 or args.all_sizes:
                items = _items_module(hidden, dim, args.items)
                row |= _time_top10(items, hidden, args.repeats)
                del items
            rows.append(row)
            print(_ranking_line(row), flush=True)
    _save("ranking", {"items": args.items, "rows": rows})
    print("\n| LM (hidden) | item table | parameters | float32 | bfloat16 | top-10, 1 user | "
          "per user, batch of 32 |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |")  # fmt: skip
    for row in rows:
        print(_ranking_line(row))


def _ranking_line(row: dict) -> str:
    table = "full" if row["item_dim"] == row["hidden"] else f"factorised, {row['item_dim']}"
    one = f"{row['one_user_ms']:.1f} ms" if "one_user_ms" in row else "-"
    batch = f"{row['batch_user_ms']:.2f} ms" if "batch_user_ms" in row else "-"
    return (
        f"| {row['model']} ({row['hidden']}) | {table} | {row['parameters'] / 1e6:,.1f}M | "
        f"{row['float32_MiB']:,.0f} MiB | {row['bfloat16_MiB']:,.0f} MiB | {one} | {batch} |"
    )


@torch.no_grad()
def _time_top10(items, hidden: int, repeats: int) -> dict:
    one, batch = [], []
    for _ in range(repeats):
        query = torch.randn(1, hidden)
        start = time.perf_counter()
        torch.topk(items.scores(query), 10)
        one.append(time.perf_counter() - start)
        queries = torch.randn(32, hidden)
        start = time.perf_counter()
        torch.topk(items.scores(queries), 10)
        batch.append((time.perf_counter() - start) / 32)
    return {
        "one_user_ms": 1000 * statistics.median(one[1:] or one),
        "batch_user_ms": 1000 * statistics.median(batch[1:] or batch),
    }


def overhead(args) -> None:
    from regen_models.base import load_causal_lm
    from regen_models.lumen import LumenForCausalLM
    from regen_models.lumen.data import add_item_tokens

    torch.manual_seed(0)
    language_model, tokenizer = load_causal_lm(args.base)
    add_item_tokens(tokenizer)
    lumen = LumenForCausalLM.from_base(
        language_model, tokenizer, args.items, item_embedding_dim=args.item_dim
    )
    config = lumen.config
    # One batch: prompt tokens with a placeholder every 40 tokens, then `<switch><item>` and a
    # 48-token narrative; the plain step scores the same positions as text.
    vocab = language_model.config.vocab_size
    prompt = torch.randint(10, vocab - 10, (args.batch, args.tokens))
    prompt[:, ::40] = config.item_token_id
    narrative = torch.randint(10, vocab - 10, (args.batch, 48))
    target = torch.tensor([[config.switch_token_id, config.item_token_id]]).repeat(args.batch, 1)
    input_ids = torch.cat([prompt, target, narrative], dim=1)
    placeholders = int((input_ids[0] == config.item_token_id).sum())
    item_ids = torch.randint(0, args.items, (args.batch, placeholders))
    labels = input_ids.clone()
    labels[:, : args.tokens] = -100
    plain_ids = input_ids.masked_fill(input_ids == config.item_token_id, 5)

    def lumen_step():
        lumen.zero_grad(set_to_none=True)
        lumen(input_ids=input_ids, item_ids=item_ids, labels=labels).loss.backward()

    def plain_step():
        language_model.zero_grad(set_to_none=True)
        language_model(
            input_ids=plain_ids, labels=labels.masked_fill(labels >= vocab, 5)
        ).loss.backward()

    switch_prompt = input_ids[:, : args.tokens + 1]

    def lumen_rank():
        with torch.no_grad():
            lumen.recommend(switch_prompt, item_ids=item_ids[:, :-1], top_k=10)

    def plain_forward():
        with torch.no_grad():
            language_model(input_ids=plain_ids[:, : args.tokens + 1], logits_to_keep=1)

    lumen.train()
    train = _interleaved(lumen_step, plain_step, args.repeats)
    print(f"training step: LUMEN {train[0]:.2f} s, base LM {train[1]:.2f} s", flush=True)
    lumen.eval()
    infer = _interleaved(lumen_rank, plain_forward, args.repeats)
    result = {
        "base": args.base,
        "batch": args.batch,
        "prompt_tokens": args.tokens,
        "items": args.items,
        "item_dim": args.item_dim or lumen.config.hidden_size,
        "train_step_s": train,
        "inference_s": infer,
        "train_ratio": train[0] / train[1],
        "inference_ratio": infer[0] / infer[1],
    }
    _save("overhead", result)
    print(
        f"\n| measure | LUMEN | base LM | ratio |\n| --- | ---: | ---: | ---: |\n"
        f"| training step (batch {args.batch}, {args.tokens}+50 tokens) | {train[0]:.2f} s | "
        f"{train[1]:.2f} s | {result['train_ratio']:.2f}x |\n"
        f"| ranking forward vs plain forward | {infer[0]:.2f} s | {infer[1]:.2f} s | "
        f"{result['inference_ratio']:.2f}x |"
    )


def _interleaved(first, second, repeats: int) -> tuple[float, float]:
    first(), second()  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for index, fn in enumerate((first, second)):
            start = time.perf_counter()
            fn()
            times[index].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


@torch.no_grad()
def switch(args) -> None:
    import datasets

    from regen_models.lumen.recommender import Lumen

    lumen = Lumen.from_pretrained(args.model)
    model = lumen.model.eval()
    split = datasets.load_dataset(args.dataset_name, args.dataset_config, split="test")
    rows = list(split.select(range(min(args.users, split.num_rows))))
    results = {}
    for kind in args.kinds or lumen.config.kinds:
        encoder = lumen.encoder()
        whole, alone = [], []
        for row in rows:
            example = encoder.ranking_example(row, kind)  # the prompt, then `ID: <switch>`
            logits = model(
                torch.tensor([example.input_ids]), item_ids=torch.tensor([example.item_ids])
            ).logits[0]
            width = len(encoder.switch_ids)
            log_probs = logits[-width - 1 : -1].float().log_softmax(-1)
            wanted = torch.tensor(example.input_ids[-width:])
            scores = log_probs.gather(1, wanted[:, None])[:, 0]
            whole.append(float(scores.sum()))
            alone.append(float(scores[-1]))
        lumen.forced_switches = 0
        lumen.write(rows, kind, max_new_tokens=4)
        results[kind] = {
            "log_p_completion_prefix": statistics.mean(whole),
            "log_p_switch_after_label": statistics.mean(alone),
            "forced_switches": lumen.forced_switches,
            "users": len(rows),
        }
        print(
            f"{kind}: mean log P('ID: <switch>') {statistics.mean(whole):.3f}, mean log "
            f"P(<switch> | 'ID: ') {statistics.mean(alone):.3f}, forced switches "
            f"{lumen.forced_switches}/{len(rows)}"
        )
    _save("switch", {"model": str(args.model), "kinds": results})


def _save(name: str, payload: dict) -> None:
    from regen_dataset.files import write_json

    write_json(OUT / f"{name}.json", payload)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    rank = commands.add_parser("ranking", help="top-10 latency and table memory")
    rank.add_argument("--items", type=int, default=CLOTHING_ITEMS)
    rank.add_argument("--repeats", type=int, default=20)
    rank.add_argument("--all_sizes", action="store_true", help="time the 2,304 tables too")
    rank.set_defaults(func=ranking)
    over = commands.add_parser("overhead", help="LUMEN against its base LM")
    over.add_argument("--base", default="embedded")
    over.add_argument("--items", type=int, default=28_000, help="Office has about 28k items")
    over.add_argument("--item_dim", type=int, default=None)
    over.add_argument("--tokens", type=int, default=384)
    over.add_argument("--batch", type=int, default=1)
    over.add_argument("--repeats", type=int, default=3)
    over.set_defaults(func=overhead)
    probe = commands.add_parser("switch", help="how readily a checkpoint switches to an item")
    probe.add_argument("--model", required=True)
    probe.add_argument("--dataset_name", required=True)
    probe.add_argument("--dataset_config", default="office")
    probe.add_argument("--users", type=int, default=16)
    probe.add_argument("--kinds", nargs="*", default=None)
    probe.set_defaults(func=switch)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
