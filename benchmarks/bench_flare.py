"""FLARE benchmarks: accuracy on MovieLens-100k and speed at the Clothing catalog size.

    # accuracy: FLARE against the same model without content and critiques (BERT4Rec-style),
    # same recipe and budget, leave-one-out, full ranking of the 1,682 movies; mean and spread
    # over seeds; arguments after -- go to train_flare (e.g. -- --max_steps 3000); --run-name
    # names the checkpoints and result files (default: movielens)
    python benchmarks/bench_flare.py movielens --source PATH_TO_ML_100K --seeds 42 43 44

    # critique signal: the cpu recipe for up to 3,000 steps (validation every 200, patience 5) on
    # synthetic office and clothing data, trained and tested with the steering critiques
    # (`office`) and without them (`office_no_critique`)
    python benchmarks/bench_flare.py critiques --users 5000 --seeds 42 43 44

    # speed: training sequences per second and full-catalog latency per user, 376,847 items;
    # --before FILE trains an older modeling_flare.py beside the current one, same batches
    python benchmarks/bench_flare.py speed
    git show REV:regen_models/flare/modeling_flare.py > /tmp/modeling_flare_before.py
    python benchmarks/bench_flare.py speed --items 1682 --batch-size 128 --steps 20 \
        --before /tmp/modeling_flare_before.py      # --content-tokens 16: the token path

    # how much of a user's next movie the content vectors find alone (no training): the most
    # recent item's mean-centred content ranks every movie by cosine; MovieLens validation split
    # of the folder `movielens` built; "embedded:LAYER" pools a hidden layer of Gemma 3 270M
    python benchmarks/bench_flare.py content-signal --encoders minilm embedded:12 embedded:18

    # trained checkpoints' scores plus the content affinity of each movie to the user's most
    # recent ones, its weight chosen on validation (no training): does content hold next-item
    # signal that the model has not learned?
    python benchmarks/bench_flare.py content-rescore bench_out/flare/ml-all-id-seed42 \
        bench_out/flare/ml-all-flare-seed42

    # paired bootstrap over test users: runs (several files = seeds, averaged per user) against
    # the first, e.g. FLARE against RecBole's SASRec (bench_recbole.py writes its predictions);
    # --drop-seen N first removes each user's N most recent history items from every ranking
    # (--drop-seen all: the whole history); --by-target-count 20 60 150 adds Recall@10 per group
    # of users, by how often their target appears in the histories
    python benchmarks/bench_flare.py compare SASRec=bench_out/recbole/SASRec-seed42.test.jsonl \
        FLARE=bench_out/flare/movielens-flare-seed42.jsonl,bench_out/flare/movielens-flare-seed43.jsonl

`--source` is a folder with `u.data`/`u.item` or RecBole's `ml-100k.inter`/`ml-100k.item`; by
default the files of an installed `recbole` package are used. Results go to
`bench_out/flare/*.json` and are printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter
from itertools import pairwise
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


MOVIELENS_VARIANTS = {
    "flare": ("FLARE (ID + content)", []),
    "id": ("ID only (BERT4Rec-style)", ["--use_content", "false", "--use_critiques", "false"]),
}


def prediction_ranks(path, split, where: str, drop_seen: int | str = 0):
    """1-based rank of each user's target of `split` (a loaded dataset split) in a prediction
    file, in the split's order; a file with other users is refused at its line. `drop_seen=N`
    first removes from each ranking the user's N most recent history items, `"all"` their whole
    history (a filter applied after the model, the same for every run)."""
    from regen_models.metrics import ranks_from_lists
    from regen_models.predictions import read_predictions

    ranked = read_predictions(path).for_users(split["user_id"], where).ranked_items
    if drop_seen:
        start = 0 if drop_seen == "all" else -drop_seen
        recent = [{i["item_id"] for i in h[start:]} for h in split["history"]]
        ranked = [
            [i for i in items if i not in seen] for items, seen in zip(ranked, recent, strict=True)
        ]
    return ranks_from_lists(ranked, [row["item_id"] for row in split["target"]])


def mean_and_spread(runs, keys) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (0 for one run) of each key over the runs' dicts;
    a key may be a path "a/b" into nested dicts."""

    def value(run: dict, key: str) -> float:
        for part in key.split("/"):
            run = run[part]
        return run

    runs = list(runs)
    return {
        key: {
            "mean": statistics.fmean(value(run, key) for run in runs),
            "stdev": statistics.stdev(value(run, key) for run in runs) if len(runs) > 1 else 0.0,
        }
        for key in keys
    }


def movielens(args) -> None:
    import datasets

    from regen_dataset.export import build_folder
    from regen_dataset.movielens import write_movielens
    from regen_models.metrics import ranking_metrics
    from training import predict, train_flare

    OUT.mkdir(parents=True, exist_ok=True)
    source = args.source or recbole_movielens()
    release = OUT / "movielens.jsonl"
    converted = OUT / f"movielens.jsonl.{os.getpid()}.new"  # runs may start side by side
    write_movielens(source, converted)
    folder = OUT / "movielens"
    # Rebuild only what changed: another run may be reading the folder.
    if folder.is_dir() and release.exists() and release.read_bytes() == converted.read_bytes():
        converted.unlink()
    else:
        converted.replace(release)
        build_folder({"office": [str(release)]}, folder, overwrite=True, progress=False)
    test = datasets.load_dataset(str(folder), "office", split="test")
    results = {}
    for variant in args.variants:
        name, extra = MOVIELENS_VARIANTS[variant]
        runs = {}
        for seed in args.seeds:
            checkpoint = OUT / f"{args.run_name}-{variant}-seed{seed}"
            started = time.perf_counter()
            validation = train_flare.run(
                ["--config", str(args.recipe), "--dataset_name", str(folder), "--dataset_config",
                 "office", "--output_dir", str(checkpoint), "--overwrite_output_dir", "true",
                 "--seed", str(seed), *extra,
                 *args.train_args]
            )  # fmt: skip
            seconds = time.perf_counter() - started
            path = checkpoint.with_name(checkpoint.name + ".jsonl")  # run names may hold dots
            predict.main(
                ["--model", str(checkpoint), "--dataset_name", str(folder), "--dataset_config",
                 "office", "--split", "test", "--out", str(path)]
            )  # fmt: skip
            metrics = ranking_metrics(prediction_ranks(path, test, "office test"), ks=(10,))
            runs[seed] = {
                **metrics,
                "best_validation_NDCG@10": validation.get("eval_NDCG@10"),
                "train_seconds": round(seconds, 1),
            }
            print(f"{name}, seed {seed}: {runs[seed]}", flush=True)
        keys = ("Recall@10", "NDCG@10", "MRR@10", "train_seconds")
        results[name] = {"seeds": runs, **mean_and_spread(runs.values(), keys)}
    record = {"recipe": str(args.recipe), "train_args": args.train_args, "results": results}
    name = f"{args.run_name}-{'-'.join(args.variants)}-seeds{'-'.join(map(str, args.seeds))}.json"
    (OUT / name).write_text(json.dumps(record, indent=2))
    print(f"\n{len(args.seeds)} seed(s): mean (sample standard deviation)\n")
    print("| model | Recall@10 | NDCG@10 | MRR@10 | training time |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, m in results.items():
        cells = [
            f"{m[k]['mean']:.4f} ({m[k]['stdev']:.4f})" for k in ("Recall@10", "NDCG@10", "MRR@10")
        ]
        print(f"| {name} | {' | '.join(cells)} | {m['train_seconds']['mean']:.0f} s |")


def critiques(args) -> None:
    """Recall@10 with and without critiques, over seeds; also on the test users whose target was
    critiqued (the only ones a critique can help: the others have none in either condition)."""
    import datasets
    import numpy as np

    from regen_dataset.export import build_folder
    from regen_dataset.synthetic import write_release
    from regen_models.metrics import ranking_metrics
    from training import predict, train_flare

    OUT.mkdir(parents=True, exist_ok=True)
    recipe = Path(args.recipe)
    results = {}
    for category in args.categories:
        release = OUT / f"{category}_synthetic_{args.users}.jsonl"
        if not release.exists():
            write_release(release, category, args.users, seed=args.data_seed, workers=2)
        folder = OUT / f"{category}_synthetic_{args.users}"
        if not (folder / "README.md").exists():
            build_folder({category: [str(release)]}, folder, overwrite=True, progress=False)
        test = datasets.load_dataset(str(folder), category, split="test")
        critiqued = np.asarray([critique is not None for critique in test["critique"]])
        for config in (category, f"{category}_no_critique"):
            runs = {}
            for seed in args.seeds:
                checkpoint = OUT / f"{args.run_name}-{config}-seed{seed}"
                started = time.perf_counter()
                train_flare.run(
                    ["--config", str(recipe), "--dataset_name", str(folder), "--dataset_config",
                     config, "--output_dir", str(checkpoint), "--overwrite_output_dir", "true",
                     "--seed", str(seed),
                     "--max_steps", str(args.max_steps), "--eval_steps", "200",
                     "--save_steps", "200", "--early_stopping_patience", "5", *args.train_args]
                )  # fmt: skip
                seconds = time.perf_counter() - started
                path = checkpoint.with_name(checkpoint.name + ".jsonl")  # run names may hold dots
                predict.main(
                    ["--model", str(checkpoint), "--dataset_name", str(folder), "--dataset_config",
                     config, "--split", "test", "--out", str(path)]
                )  # fmt: skip
                ranks = prediction_ranks(path, test, f"{config} test")
                runs[seed] = {
                    "all": ranking_metrics(ranks, ks=(10,)),
                    "critiqued": ranking_metrics(ranks[critiqued], ks=(10,)),
                    "train_seconds": round(seconds, 1),
                }
                print(f"{config}, seed {seed}: {runs[seed]}", flush=True)
            keys = ("all/Recall@10", "all/NDCG@10", "critiqued/Recall@10", "train_seconds")
            results[config] = {
                "test_users": len(test),
                "critiqued_users": int(critiqued.sum()),
                "seeds": runs,
                **mean_and_spread(runs.values(), keys),
            }
    name = f"{args.run_name}-{'-'.join(args.categories)}-seeds{'-'.join(map(str, args.seeds))}.json"
    record = {"recipe": str(recipe), "max_steps": args.max_steps, "train_args": args.train_args}
    record["results"] = results
    (OUT / name).write_text(json.dumps(record, indent=2))
    print(f"\n{len(args.seeds)} seed(s): mean (sample standard deviation)\n")
    print("| data | test users | Recall@10 | NDCG@10 | critiqued users | their Recall@10 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for config, m in results.items():
        cells = [
            f"{m[key]['mean']:.4f} ({m[key]['stdev']:.4f})"
            for key in ("all/Recall@10", "all/NDCG@10", "critiqued/Recall@10")
        ]
        print(
            f"| {config} | {m['test_users']} | {cells[0]} | {cells[1]} | "
            f"{m['critiqued_users']} | {cells[2]} |"
        )


def paired_bootstrap(baseline, run, resamples: int = 10_000, seed: int = 0) -> list[dict]:
    """`baseline` and `run` are `[users, metrics]` per-user figures of the same users. Users are
    resampled with replacement, the same draw for both, so that what the runs share (which users
    are easy) cancels out of their ratio. Per metric: the relative change of the means, its 95%
    percentile interval, and the share of resamples in which `run` is at least 10% ahead."""
    import numpy as np

    baseline, run = np.asarray(baseline, dtype=float), np.asarray(run, dtype=float)
    if baseline.shape != run.shape:
        raise ValueError(f"per-user figures of shapes {baseline.shape} and {run.shape}")
    draws = np.random.default_rng(seed).integers(0, len(run), (resamples, len(run)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = run[draws].mean(axis=1) / baseline[draws].mean(axis=1)
    out = []
    for column in range(run.shape[1]):
        low, high = np.percentile(ratios[:, column] - 1, [2.5, 97.5])
        out.append(
            {
                "figure": float(run[:, column].mean()),
                "change": float(run[:, column].mean() / baseline[:, column].mean() - 1),
                "interval_95": [float(low), float(high)],
                "share_at_least_10_percent_ahead": float((ratios[:, column] >= 1.1).mean()),
            }
        )
    return out


def compare(args) -> None:
    """Prediction files against the first one's, paired over the users of a split. A run is
    `LABEL=FILE[,FILE...]`; with several files (seeds), a user's figure is their mean."""
    import datasets
    import numpy as np

    from regen_models.metrics import RANKING_METRICS, ranking_metrics

    split = datasets.load_dataset(args.dataset, args.config, split=args.split)
    users = split["user_id"]
    where = f"{args.config} {args.split}"

    def per_user(path: str) -> np.ndarray:
        ranks = prediction_ranks(path, split, where, args.drop_seen)
        # One definition of each metric: ranking_metrics of each user's rank alone.
        by_rank = {rank: ranking_metrics([rank]) for rank in set(ranks.tolist())}
        return np.array([[by_rank[rank][m] for m in RANKING_METRICS] for rank in ranks])

    runs = {}
    for run in args.runs:
        label, _, files = run.partition("=")
        if not files:
            raise SystemExit(f"{run!r}: expected LABEL=FILE[,FILE...]")
        runs[label] = np.mean([per_user(path) for path in files.split(",")], axis=0)
    (base_label, base), *others = runs.items()
    print(f"\n{len(users)} {where} users, {args.resamples} paired resamples\n")
    print(f"| run | metric | figure | against {base_label} | 95% interval | resamples >= +10% |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    results = {}
    for label, values in others:
        figures = paired_bootstrap(base, values, args.resamples, args.seed)
        results[label] = dict(zip(RANKING_METRICS, figures, strict=True))
        for metric, f in results[label].items():
            low, high = f["interval_95"]
            print(
                f"| {label} | {metric} | {f['figure']:.4f} | {f['change']:+.1%} | "
                f"{low:+.1%} to {high:+.1%} | {f['share_at_least_10_percent_ahead']:.1%} |"
            )
    base_means = (f"{metric} {base[:, i].mean():.4f}" for i, metric in enumerate(RANKING_METRICS))
    print(f"{base_label}: " + ", ".join(base_means))
    by_count = {}
    if args.by_target_count:
        by_count = recall_by_target_count(split, runs, args.by_target_count)
    if args.out:
        record = {"baseline": base_label, "runs": args.runs, "users": len(users)}
        record["drop_seen"] = args.drop_seen
        record["results"] = results
        record["recall_by_target_count"] = by_count
        Path(args.out).write_text(json.dumps(record, indent=2))


def target_counts(split):
    """For each user of a split, how often their target appears in the split's histories: how
    much the models saw of it."""
    import numpy as np

    counts = Counter(item["item_id"] for history in split["history"] for item in history)
    return np.array([counts[target["item_id"]] for target in split["target"]])


def recall_by_target_count(split, runs: dict, edges: list[int]) -> dict:
    """Prints and returns each run's Recall@10 over the users whose target count (above) lies
    in each interval that `edges` cut out."""
    from regen_models.metrics import RANKING_METRICS

    if min(edges) <= 0 or len(set(edges)) != len(edges):
        raise ValueError(f"--by-target-count: expected distinct counts above 0, got {edges}")
    counts = target_counts(split)
    bounds = [0, *sorted(edges), None]
    groups = {}
    for low, high in pairwise(bounds):
        chosen = (counts >= low) & (True if high is None else counts < high)
        groups[f"{low}+" if high is None else f"{low}-{high - 1}"] = chosen
    column = RANKING_METRICS.index("Recall@10")
    table = {
        label: {name: float(values[chosen, column].mean()) for name, chosen in groups.items()}
        for label, values in runs.items()
    }
    print("\nRecall@10 by how often the target appears in the histories (users):\n")
    print("| run | " + " | ".join(f"{n} ({c.sum()})" for n, c in groups.items()) + " |")
    print("| --- |" + " ---: |" * len(groups))
    for label, row in table.items():
        print(f"| {label} | " + " | ".join(f"{v:.4f}" for v in row.values()) + " |")
    return table


class HiddenStateEncoder:
    """A causal LM as a sentence encoder: the mean of one hidden layer over a text's tokens (the
    begin-of-sequence token left out), with sentence-transformers' `encode` signature."""

    def __init__(self, name: str, layer: int):
        from regen_models.base import load_causal_lm

        model, self.tokenizer = load_causal_lm(name)
        # The decoder alone: the LM head over a 262,144-word vocabulary is not needed here.
        self.decoder = model.get_decoder().eval()
        self.layer = layer

    def encode(self, texts, batch_size: int = 64, convert_to_numpy: bool = True):
        import numpy as np
        import torch

        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                list(texts[start : start + batch_size]), return_tensors="pt", padding=True
            )
            with torch.no_grad():
                states = self.decoder(**batch, output_hidden_states=True).hidden_states
            kept = batch["attention_mask"].bool() & (
                batch["input_ids"] != self.tokenizer.bos_token_id
            )
            weights = kept.unsqueeze(-1).float()
            pooled = (states[self.layer] * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            chunks.append(pooled.numpy())
        return np.concatenate(chunks)


def content_signal(args) -> None:
    import datasets
    import numpy as np
    import torch

    from regen_models.items import (
        CONTENT_FIELDS,
        ItemVocabulary,
        content_vectors,
        encode_texts,
    )
    from regen_models.metrics import ranking_metrics, target_ranks

    vocabulary = ItemVocabulary.from_dataset(args.dataset, args.config)
    split = datasets.load_dataset(args.dataset, args.config, split=args.split)
    histories = [vocabulary.indices([i["item_id"] for i in h]) for h in split["history"]]
    targets = torch.as_tensor(vocabulary.indices([t["item_id"] for t in split["target"]]))
    rows = []
    for encoder in args.encoders:
        started = time.perf_counter()
        if encoder == "minilm":
            vectors = content_vectors(vocabulary, None, progress=False)
        else:
            name, _, layer = encoder.partition(":")
            model = HiddenStateEncoder(name, int(layer))
            vectors = np.stack(
                [encode_texts(vocabulary.texts(f), model) for f in CONTENT_FIELDS], 1
            )
        seconds = time.perf_counter() - started
        fields = {
            "all fields": vectors,
            **{f: vectors[:, [i]] for i, f in enumerate(CONTENT_FIELDS)},
        }
        for label, chosen in fields.items():
            items = centred_item_vectors(chosen)
            scores = items[[h[-1] for h in histories]] @ items.T
            for row, history in enumerate(histories):
                scores[row, history] = -torch.inf
            found = ranking_metrics(target_ranks(scores, targets).numpy(), ks=(10,))
            rows.append({"encoder": encoder, "fields": label, "seconds": round(seconds, 1),
                         **{k: found[k] for k in ("Recall@10", "NDCG@10")}})  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "content_signal.json").write_text(json.dumps(rows, indent=2))
    print(f"\n{args.split} split, {len(targets)} users, {len(vocabulary)} items\n")
    print("| encoder | content | Recall@10 | NDCG@10 |\n| --- | --- | ---: | ---: |")
    for row in rows:
        print(f"| {row['encoder']} | {row['fields']} | {row['Recall@10']:.4f} | "
              f"{row['NDCG@10']:.4f} |")  # fmt: skip


def centred_item_vectors(vectors):
    """`[items, fields, dim]` content vectors -> `[items, dim]` unit vectors: each field's
    vectors centred (a language model's raw states all point much the same way) over the present
    texts only (a missing text keeps its zero vector and is left out), then the mean of an
    item's fields."""
    import numpy as np
    import torch

    present = np.abs(vectors).sum(-1, keepdims=True) > 0
    centre = (vectors * present).sum(0) / np.maximum(present.sum(0), 1)
    vectors = np.where(present, vectors - centre, 0.0)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
    items = vectors.sum(1) / np.maximum(present.sum(1), 1)
    return torch.nn.functional.normalize(torch.as_tensor(items, dtype=torch.float32), dim=-1)


def content_rescore(args) -> None:
    """Trained checkpoints' scores plus a content affinity: how close each movie's content lies
    to the user's most recent movies (a recency-weighted mean of cosines). Both are standardised
    per user; the affinity's weight (alpha) and recency decay (beta) are chosen on validation. A
    content signal that the model has not learned would lift validation here, with no training."""
    import datasets
    import torch

    from regen_models.flare.ranking import FlareRanker
    from regen_models.items import content_vectors
    from regen_models.metrics import ranking_metrics, target_ranks

    def standardised(scores):
        return (scores - scores.mean(1, keepdim=True)) / scores.std(1, keepdim=True)

    splits = {
        name: datasets.load_dataset(args.dataset, args.config, split=name)
        for name in ("validation", "test")
    }
    # alpha 0 (the model's own scores) is always a choice
    grid = [(alpha, beta) for alpha in sorted({0.0, *args.alphas}) for beta in args.betas]
    rows = []
    for run in args.runs:
        ranker = FlareRanker.from_pretrained(run)
        vocabulary = ranker.vocabulary
        items = centred_item_vectors(content_vectors(vocabulary, None, progress=False))
        found = {}
        for name, split in splits.items():
            histories = [vocabulary.indices([i["item_id"] for i in h]) for h in split["history"]]
            targets = torch.as_tensor(vocabulary.indices([t["item_id"] for t in split["target"]]))
            learned = standardised(ranker.scores(split, with_critiques=False).float())
            # [users, recent]: the most recent items, age 0 the latest; shorter histories are
            # padded with item 0 at weight 0
            size = min(args.recent, max(map(len, histories)))
            recent = torch.zeros(len(histories), size, dtype=torch.long)
            ages = torch.zeros(len(histories), size)
            real = torch.zeros(len(histories), size)
            for row, history in enumerate(histories):
                latest = history[-size:]
                recent[row, size - len(latest) :] = torch.tensor(latest)
                ages[row, size - len(latest) :] = torch.arange(len(latest) - 1, -1, -1)
                real[row, size - len(latest) :] = 1.0
            affinity = {}
            for beta in args.betas:
                # The weighted mean of cosines is the cosine with the weighted sum of vectors.
                profiles = torch.einsum("ur,urd->ud", real * beta**ages, items[recent])
                affinity[beta] = standardised(profiles @ items.T)
            for alpha, beta in grid:
                scores = learned + alpha * affinity[beta]
                for row, history in enumerate(histories):
                    scores[row, history] = -torch.inf
                metrics = ranking_metrics(target_ranks(scores, targets).numpy(), ks=(10,))
                found[name, alpha, beta] = {k: metrics[k] for k in ("Recall@10", "NDCG@10")}
        chosen = max(grid, key=lambda ab: found[("validation", *ab)]["NDCG@10"])
        untouched = grid[0]
        row = {"run": run, "alpha": chosen[0], "beta": chosen[1]}
        for name in splits:
            row[f"{name} model"] = found[(name, *untouched)]
            row[f"{name} rescored"] = found[(name, *chosen)]
        rows.append(row)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "content_rescore.json").write_text(json.dumps(rows, indent=2))
    print(
        "\n| run | alpha, beta | validation NDCG@10: model, rescored | test Recall@10 / "
        "NDCG@10: model | rescored |\n| --- | --- | ---: | ---: | ---: |"
    )
    for row in rows:
        validation = (row["validation model"], row["validation rescored"])
        test = [row["test model"], row["test rescored"]]
        test = [f"{t['Recall@10']:.4f} / {t['NDCG@10']:.4f}" for t in test]
        print(
            f"| {row['run']} | {row['alpha']}, {row['beta']} | "
            f"{validation[0]['NDCG@10']:.4f}, {validation[1]['NDCG@10']:.4f} | "
            f"{test[0]} | {test[1]} |"
        )


def before_model(path: str, config, model):
    """The FLARE model class of an older `modeling_flare.py` (`git show REV:PATH > FILE`),
    holding the weights of `model`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("modeling_flare_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = module.FlareModel(config)
    before.load_state_dict(model.state_dict())
    return before


def speed(args) -> None:
    import torch

    from regen_models.flare import FlareConfig, FlareModel
    from regen_models.flare.data import FlareCollator, SequenceExample

    torch.manual_seed(0)
    items = args.items
    tokens = args.content_tokens
    config = FlareConfig(
        num_items=items,
        content_dim=384,
        max_sequence_length=50,
        content_tokens=tokens,
        tie_item_embeddings=args.tie_item_embeddings,
    )
    model = FlareModel(config)
    # Random content vectors: the encoder's one-time cost is not what this measures.
    if tokens:  # texts of 3 to 20 tokens, zero-padded, as MovieLens titles and genres
        vectors = torch.randn(items, 3, tokens, 384, dtype=torch.float16)
        lengths = torch.randint(3, 21, (items, 3, 1))
        vectors *= (torch.arange(tokens) < lengths).unsqueeze(-1)
    else:
        vectors = torch.randn(items, 3, 384, dtype=torch.float16)
    model.set_content_vectors(vectors)
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
    # With --before, the old model code trains beside the current one, step by step on the same
    # batches from the same weights, so that the ratio holds on a noisy machine.
    models = {"after" if args.before else "this": model}
    if args.before:
        models = {"before": before_model(args.before, config, model), **models}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-3) for name, m in models.items()}
    timings = {name: [] for name in models}
    for step in range(args.steps + 1):
        inputs = train([example(i, False) for i in range(batch)])
        for name, trained in models.items():
            trained.train()
            started = time.perf_counter()
            loss = trained(**inputs).loss
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            if step:  # the first step warms up
                timings[name].append(time.perf_counter() - started)
    rates = {name: batch / statistics.median(t) for name, t in timings.items()}
    train_rate = rates["after" if args.before else "this"]

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
        "content_tokens": tokens,
        "tie_item_embeddings": args.tie_item_embeddings,
        "threads": torch.get_num_threads(),
        "train_batch_size": batch,
        "train_sequences_per_second": round(train_rate, 1),
        **(
            {
                "before_train_sequences_per_second": round(rates["before"], 1),
                "speed_up": round(rates["after"] / rates["before"], 2),
            }
            if args.before
            else {}
        ),
        "latency_ms_per_user_batch_1": round(latencies[1], 2),
        "latency_ms_per_user_batch_256": round(latencies[256], 3),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    variant = f"{f'-tokens{tokens}' if tokens else ''}{'-tied' if args.tie_item_embeddings else ''}"
    (OUT / f"speed-{items}{variant}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def history_count(text: str) -> int | str:
    if text == "all":
        return text
    count = int(text)
    if count < 0:
        raise argparse.ArgumentTypeError(f"expected a count of items or 'all', got {text}")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    lens = commands.add_parser("movielens")
    lens.add_argument("--source", default=None)
    lens.add_argument("--seeds", type=int, nargs="+", default=[42])
    lens.add_argument(
        "--variants", nargs="+", choices=list(MOVIELENS_VARIANTS), default=list(MOVIELENS_VARIANTS)
    )
    lens.add_argument("--recipe", type=Path, default=RECIPE)
    lens.add_argument(
        "--run-name", default="movielens", help="prefix of the checkpoints and result files"
    )
    lens.add_argument(
        "train_args", nargs=argparse.REMAINDER, help="after --: more train_flare arguments"
    )
    lens.set_defaults(func=movielens)
    steer = commands.add_parser("critiques")
    steer.add_argument("--users", type=int, default=5000)
    steer.add_argument("--categories", nargs="+", default=["office", "clothing"])
    steer.add_argument("--recipe", default=str(RECIPE.with_name("cpu.yaml")))
    steer.add_argument("--max-steps", type=int, default=3000)
    steer.add_argument("--seeds", type=int, nargs="+", default=[42], help="training seeds")
    steer.add_argument("--data-seed", type=int, default=42, help="the synthetic data's seed")
    steer.add_argument(
        "--run-name", default="critiques", help="prefix of the checkpoints and result files"
    )
    steer.add_argument(
        "train_args", nargs=argparse.REMAINDER, help="after --: more train_flare arguments"
    )
    steer.set_defaults(func=critiques)
    fast = commands.add_parser("speed")
    fast.add_argument("--items", type=int, default=376_847)
    fast.add_argument("--batch-size", type=int, default=256)
    fast.add_argument("--steps", type=int, default=5)
    fast.add_argument("--before", default=None, help="an older modeling_flare.py to compare")
    fast.add_argument(
        "--content-tokens", type=int, default=0, help="token vectors per item text (0: pooled)"
    )
    fast.add_argument(
        "--tie-item-embeddings", action="store_true", help="score items against their input vectors"
    )
    fast.set_defaults(func=speed)
    signal = commands.add_parser("content-signal", help="next-item signal of content alone")
    signal.add_argument("--encoders", nargs="+", default=["minilm"], metavar="minilm|NAME:LAYER")
    signal.add_argument("--dataset", default=str(OUT / "movielens"))
    signal.add_argument("--config", default="office")
    signal.add_argument("--split", default="validation")
    signal.set_defaults(func=content_signal)
    rescore = commands.add_parser(
        "content-rescore", help="checkpoints' scores plus content affinity, chosen on validation"
    )
    rescore.add_argument("runs", nargs="+", help="FLARE checkpoint folders")
    rescore.add_argument("--dataset", default=str(OUT / "movielens"))
    rescore.add_argument("--config", default="office")
    rescore.add_argument("--recent", type=int, default=10, help="how many recent movies count")
    rescore.add_argument("--alphas", type=float, nargs="+", default=[0, 0.05, 0.1, 0.2, 0.3, 0.5])
    rescore.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.5, 0.8])
    rescore.set_defaults(func=content_rescore)
    paired = commands.add_parser("compare", help="paired bootstrap of prediction files")
    paired.add_argument("runs", nargs="+", help="LABEL=FILE[,FILE...]; the first is the baseline")
    paired.add_argument("--dataset", default=str(OUT / "movielens"))
    paired.add_argument("--config", default="office")
    paired.add_argument("--split", default="test")
    paired.add_argument("--resamples", type=int, default=10_000)
    paired.add_argument("--seed", type=int, default=0)
    paired.add_argument(
        "--drop-seen",
        type=history_count,
        default=0,
        metavar="N|all",
        help="first remove each user's N most recent history items (all: the whole history) "
        "from every ranking",
    )
    paired.add_argument(
        "--by-target-count",
        type=int,
        nargs="+",
        default=None,
        metavar="EDGE",
        help="also Recall@10 per group of users, grouped by how often their target appears in "
        "the split's histories (e.g. 20 60 150: 0-19, 20-59, 60-149, 150+)",
    )
    paired.add_argument("--out", default=None, help="also write the figures to this JSON file")
    paired.set_defaults(func=compare)
    args = parser.parse_args()
    if getattr(args, "train_args", None) and args.train_args[0] == "--":
        args.train_args = args.train_args[1:]
    args.func(args)


if __name__ == "__main__":
    main()
