"""FLARE benchmarks: accuracy on MovieLens-100k and speed at the Clothing catalog size.

    # accuracy: FLARE against the same model without content and critiques (BERT4Rec-style),
    # same recipe and budget, leave-one-out, full ranking of the 1,682 movies
    python benchmarks/bench_flare.py movielens --source PATH_TO_ML_100K

    # critique signal: the same recipe on synthetic office and clothing data, trained and tested
    # with the steering critiques (`office`) and without them (`office_no_critique`)
    python benchmarks/bench_flare.py critiques --users 5000

    # speed: training sequences per second and full-catalog latency per user, 376,847 items
    python benchmarks/bench_flare.py speed

`--source` is a folder with `u.data`/`u.item` or RecBole's `ml-100k.inter`/`ml-100k.item`; by
default the files of an installed `recbole` package are used. Results go to
`bench_out/flare/*.json` and are printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[1] / "training" / "recipes" / "flare" / "movielens.yaml"
OUT = Path("bench_out/flare")


def recbole_movielens() -> str:
    try:
        import recbole
    except ImportError:
        raise SystemExit(
            "pass --source: a folder with MovieLens-100k (u.data/u.item), or install recbole, "
            "whose wheel ships it"
        ) from None
    return os.path.join(os.path.dirname(recbole.__file__), "dataset_example", "ml-100k")


def movielens(args) -> None:
    from regen_dataset.export import build_folder
    from regen_dataset.movielens import write_movielens
    from regen_models.metrics import ranking_metrics, ranks_from_lists
    from training import predict, train_flare

    OUT.mkdir(parents=True, exist_ok=True)
    source = args.source or recbole_movielens()
    release = OUT / "movielens.jsonl"
    write_movielens(source, release)
    folder = OUT / "movielens"
    build_folder({"office": [str(release)]}, folder, overwrite=True, progress=False)
    import datasets

    test = datasets.load_dataset(str(folder), "office", split="test")
    targets = [row["item_id"] for row in test["target"]]
    variants = {
        "FLARE (ID + content)": [],
        "ID only (BERT4Rec-style)": ["--use_content", "false", "--use_critiques", "false"],
    }
    results = {}
    for name, extra in variants.items():
        slug = name.split()[0].lower()
        checkpoint = OUT / f"movielens-{slug}"
        started = time.perf_counter()
        train_flare.run(
            ["--config", str(RECIPE), "--dataset_name", str(folder), "--dataset_config",
             "office", "--output_dir", str(checkpoint), "--seed", str(args.seed), *extra]
        )  # fmt: skip
        seconds = time.perf_counter() - started
        path = OUT / f"movielens-{slug}.jsonl"
        predict.main(
            ["--model", str(checkpoint), "--dataset_name", str(folder), "--dataset_config",
             "office", "--split", "test", "--out", str(path)]
        )  # fmt: skip
        ranked = [json.loads(line)["ranked_items"] for line in path.read_text().splitlines()]
        metrics = ranking_metrics(ranks_from_lists(ranked, targets), ks=(10,))
        results[name] = {**metrics, "train_seconds": round(seconds, 1)}
    (OUT / "movielens.json").write_text(json.dumps(results, indent=2))
    print("\n| model | Recall@10 | NDCG@10 | MRR@10 | training time |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, m in results.items():
        print(
            f"| {name} | {m['Recall@10']:.4f} | {m['NDCG@10']:.4f} | "
            f"{m.get('MRR@10', m.get('MRR', float('nan'))):.4f} | {m['train_seconds']:.0f} s |"
        )


def critiques(args) -> None:
    """Recall@10 with and without critiques; also on the test users whose target was critiqued
    (the only ones a critique can help: the others have none in either condition)."""
    import datasets
    import numpy as np

    from regen_dataset.export import build_folder
    from regen_dataset.synthetic import write_release
    from regen_models.metrics import ranking_metrics, ranks_from_lists
    from training import predict, train_flare

    OUT.mkdir(parents=True, exist_ok=True)
    recipe = Path(args.recipe)
    results = {}
    for category in args.categories:
        release = OUT / f"{category}_synthetic_{args.users}.jsonl"
        if not release.exists():
            write_release(release, category, args.users, seed=args.seed, workers=2)
        folder = OUT / f"{category}_synthetic_{args.users}"
        if not (folder / "README.md").exists():
            build_folder({category: [str(release)]}, folder, overwrite=True, progress=False)
        test = datasets.load_dataset(str(folder), category, split="test")
        targets = [row["item_id"] for row in test["target"]]
        critiqued = [critique is not None for critique in test["critique"]]
        for config in (category, f"{category}_no_critique"):
            checkpoint = OUT / f"critiques-{config}"
            started = time.perf_counter()
            train_flare.run(
                ["--config", str(recipe), "--dataset_name", str(folder), "--dataset_config",
                 config, "--output_dir", str(checkpoint), "--seed", str(args.seed),
                 "--max_steps", str(args.max_steps)]
            )  # fmt: skip
            seconds = time.perf_counter() - started
            path = OUT / f"critiques-{config}.jsonl"
            predict.main(
                ["--model", str(checkpoint), "--dataset_name", str(folder), "--dataset_config",
                 config, "--split", "test", "--out", str(path)]
            )  # fmt: skip
            lines = [json.loads(line) for line in path.read_text().splitlines()]
            by_user = {line["user_id"]: line["ranked_items"] for line in lines}
            ranked = [by_user[user] for user in test["user_id"]]
            ranks = ranks_from_lists(ranked, targets)
            subset = ranks[np.asarray(critiqued, dtype=bool)]
            results[config] = {
                "all": ranking_metrics(ranks, ks=(10,)),
                "critiqued": ranking_metrics(subset, ks=(10,)),
                "test_users": len(ranks),
                "critiqued_users": len(subset),
                "train_seconds": round(seconds, 1),
            }
    (OUT / "critiques.json").write_text(json.dumps(results, indent=2))
    print("\n| data | test users | Recall@10 | NDCG@10 | critiqued users | their Recall@10 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for config, m in results.items():
        print(
            f"| {config} | {m['test_users']} | {m['all']['Recall@10']:.4f} | "
            f"{m['all']['NDCG@10']:.4f} | {m['critiqued_users']} | "
            f"{m['critiqued']['Recall@10']:.4f} |"
        )


def speed(args) -> None:
    import torch

    from regen_models.flare import FlareConfig, FlareModel
    from regen_models.flare.data import FlareCollator, SequenceExample

    torch.manual_seed(0)
    items = args.items
    config = FlareConfig(num_items=items, content_dim=384, max_sequence_length=50)
    model = FlareModel(config)
    # Random content vectors: the encoder's one-time cost is not what this measures.
    model.set_content_vectors(torch.randn(items, 3, 384, dtype=torch.float16))
    generator = torch.Generator().manual_seed(0)

    def example(user: int, predict: bool) -> SequenceExample:
        length = int(torch.randint(5, 50, (1,), generator=generator))
        ids = torch.randint(0, items, (length,), generator=generator).tolist()
        critiques = [-1] * length
        if predict:
            ids[-1] = config.mask_item_id
        return SequenceExample(str(user), ids, critiques, ids[-1])

    batch = args.batch_size
    train = FlareCollator(config.pad_item_id, config.mask_item_id, None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    timings = []
    for step in range(args.steps + 1):
        inputs = train([example(i, False) for i in range(batch)])
        started = time.perf_counter()
        loss = model(**inputs).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:  # the first step warms up
            timings.append(time.perf_counter() - started)
    train_rate = batch / (sum(timings) / len(timings))

    model.eval()
    predict = FlareCollator(config.pad_item_id, config.mask_item_id, None, train=False)
    latencies = {}
    for users in (1, 256):
        runs = []
        for _ in range(args.steps):
            inputs = predict([example(i, True) for i in range(users)])
            inputs.pop("targets", None)
            started = time.perf_counter()
            with torch.no_grad():
                model.recommend(top_k=10, **inputs)
            runs.append(time.perf_counter() - started)
        latencies[users] = 1000 * sorted(runs)[len(runs) // 2] / users
    result = {
        "items": items,
        "threads": torch.get_num_threads(),
        "train_sequences_per_second": round(train_rate, 1),
        "latency_ms_per_user_batch_1": round(latencies[1], 2),
        "latency_ms_per_user_batch_256": round(latencies[256], 3),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "speed.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    lens = commands.add_parser("movielens")
    lens.add_argument("--source", default=None)
    lens.add_argument("--seed", type=int, default=42)
    lens.set_defaults(func=movielens)
    steer = commands.add_parser("critiques")
    steer.add_argument("--users", type=int, default=5000)
    steer.add_argument("--categories", nargs="+", default=["office", "clothing"])
    steer.add_argument("--recipe", default=str(RECIPE.with_name("cpu.yaml")))
    steer.add_argument("--max-steps", type=int, default=1500)
    steer.add_argument("--seed", type=int, default=42)
    steer.set_defaults(func=critiques)
    fast = commands.add_parser("speed")
    fast.add_argument("--items", type=int, default=376_847)
    fast.add_argument("--batch-size", type=int, default=256)
    fast.add_argument("--steps", type=int, default=5)
    fast.set_defaults(func=speed)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
