"""`regen eval`: the paper's tables for any model's predictions, plus baselines and rater plots.

    # predictions of one or more models, on the configs with and without critiques
    regen eval --dataset regen --split test \\
        --run most_popular office preds/most_popular/office.jsonl \\
        --run most_popular office_no_critique preds/most_popular/office_no_critique.jsonl \\
        --out eval_out

    regen eval baselines --dataset regen --config office --out preds   # write baseline predictions
    regen eval rater --dataset regen --config office --out eval_out     # auto-rater score plots
    regen eval fusion-ablation --dataset regen-users --config office    # see fusion_ablation.py

The table follows Table 4 of "REGEN: A Dataset and Benchmarks with Natural Language Critiques and
Narratives" (Su et al., 2025): a block per condition (history only, history + critique), the
metrics as rows (Recall@10, NDCG@10, MRR@10, BLEU, ROUGE, SemSim), and a column per narrative kind
and model (ranking metrics repeat across kinds, as in the paper). It is printed, and written as
`table.md`, `results.json` and `plots.png`.

A prediction file is scored only when it fits the split: every user of the split once, no other
user, and ranked items from the category's catalog (`regen_models.predictions`). An `--out` folder
holds the results of one dataset and split: a later call adds its runs to those already in its
`results.json` and redraws the table with all of them; a run whose model and config are already
there is refused unless `--overwrite` is given, which replaces that run. Tables of a folder whose
build marks it SYNTHETIC say so, as do all the files written from it.
"""

from __future__ import annotations

import argparse
import json
import os
import textwrap
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np

from regen_dataset.export import is_synthetic_build
from regen_dataset.files import atomic_path, write_json, write_text
from regen_dataset.schema import (
    NARRATIVE_KINDS,
    RATER_ATTRIBUTES,
    check_user_config,
    config_category,
    config_has_critiques,
)
from regen_models import metrics
from regen_models.baselines import NEAREST_NEIGHBOUR, neighbour_note, neighbour_pool
from regen_models.items import DEFAULT_ENCODER, catalog_item_ids
from regen_models.predictions import read_predictions, write_predictions

# The paper reports MRR with a cutoff of 10 (N = 10, as RecBole does): a list-length-free figure.
TABLE_RANKING_METRICS = metrics.RANKING_METRICS  # the columns of the paper's tables
SYNTHETIC_NOTE = "**SYNTHETIC data: these numbers only show that the tooling works.**"

CONDITIONS = {False: "History -> ID + narrative", True: "History + critique -> ID + narrative"}
# The narrative columns in the order of the paper's Table 4; the user profile, which it does not
# report, last.
TABLE_KINDS = (
    "purchase_reason",
    "user_summary_brief",
    "product_endorsement",
    "purchase_reason_explanation",
    "user_summary_long",
    "user_profile",
)
KIND_TITLES = {
    "purchase_reason": "Purchase reason",
    "purchase_reason_explanation": "Purchase reason expl.",
    "product_endorsement": "Product endorsement",
    "user_summary_brief": "User summary",
    "user_summary_long": "Long user summary",
    "user_profile": "User profile",
}


def load_split(dataset_dir: str | os.PathLike, config: str, split: str):
    import datasets

    return datasets.load_dataset(os.fspath(dataset_dir), config, split=split)


def evaluate_run(
    split_rows,
    predictions,
    catalog: Collection[str],
    encoder=None,
    cache: dict | None = None,
    first: int | None = None,
) -> dict:
    """Metrics of one prediction file against one split: ranking and text per narrative kind.

    The file must predict exactly the split's users and rank only items of `catalog` (the item
    ids of the split's category, `catalog_item_ids`); otherwise `PredictionFormatError`. With
    `first`, only the split's first `first` users are scored: the file must hold all of them and
    may hold other users of the split.
    """
    config = split_rows.info.config_name
    user_ids = split_rows["user_id"]
    predictions.check_made_for(config, str(split_rows.split))
    predictions = predictions.for_users(user_ids, where=f"{config} {split_rows.split}", first=first)
    if first is not None:
        split_rows = split_rows.select(range(min(first, split_rows.num_rows)))
        user_ids = split_rows["user_id"]
    result: dict = {"users": len(user_ids), "ranking": None, "text": {}}
    if predictions.narratives and predictions.narrated_item:
        result["narrated_item"] = predictions.narrated_item
    if predictions.ranked_items is not None:
        predictions.check_catalog(catalog, config_category(config))
        targets = [target["item_id"] for target in split_rows["target"]]
        ranks = metrics.ranks_from_lists(predictions.ranked_items, targets)
        result["ranking"] = metrics.ranking_metrics(ranks)
    references = split_rows["narratives"]
    for kind, texts in predictions.narratives.items():
        # A blank reference is no reference: it would score any text, and count in `n`.
        rows = [row for row, narrative in enumerate(references) if (narrative[kind] or "").strip()]
        if not rows:
            result["text"][kind] = {"n": 0, "skipped": len(user_ids)}
            continue
        scores = metrics.text_metrics(
            [texts[row] for row in rows], [references[row][kind] for row in rows], encoder, cache
        )
        result["text"][kind] = {**scores, "n": len(rows), "skipped": len(user_ids) - len(rows)}
    return result


def results_table(results: dict[tuple[str, str], dict]) -> str:
    """Markdown in the layout of the paper's Table 4 from {(model, config): evaluate_run(...)}."""
    models = list(dict.fromkeys(model for model, _ in results))
    writes = {
        m: {k for (model, _), r in results.items() if model == m for k in r["text"]} for m in models
    }
    # A column per narrative kind and model that writes it; models that only rank get one column.
    columns = [(None, m) for m in models if not writes[m]] + [
        (kind, m) for kind in TABLE_KINDS for m in models if kind in writes[m]
    ]
    header = (
        "| Condition | Metric | "
        + " | ".join(
            (f"{KIND_TITLES[kind]}: {model}" if kind else f"{model} (ranking)")
            for kind, model in columns
        )
        + " |"
    )
    lines = [header, "|" + "---|" * (len(columns) + 2)]
    categories = sorted({config_category(config) for _, config in results})
    for category in categories:
        for critiques in (False, True):
            config = category if critiques else f"{category}_no_critique"
            if not any(c == config for _, c in results):
                continue
            label = f"{CONDITIONS[critiques]} ({config})"
            for metric in TABLE_RANKING_METRICS + metrics.TEXT_METRICS:
                cells = [
                    _cell(results.get((model, config)), kind, metric) for kind, model in columns
                ]
                lines.append(f"| {label} | {metric} | " + " | ".join(cells) + " |")
                label = ""
    return "\n".join(lines)


def _cell(result: dict | None, kind: str | None, metric: str) -> str:
    if result is None:
        return "–"
    if metric in TABLE_RANKING_METRICS:
        value = None if result["ranking"] is None else result["ranking"].get(metric)
        return "–" if value is None else f"{value:.4f}"
    scores = result["text"].get(kind) if kind else None
    if not scores or metric not in scores:
        return "–"
    return f"{scores[metric]:.3f}" if metric == "SemSim" else f"{scores[metric]:.2f}"


def plot_results(
    results: dict[tuple[str, str], dict],
    path: str,
    title: str | None = None,
    notes: list[str] | None = None,
) -> None:
    """Bars per metric: ranking metrics per model, text metrics per narrative kind and model;
    configs with critiques plain, without critiques hatched; `notes` under the plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(18, 8.5))
    ranked = [run for run, result in results.items() if result["ranking"]]
    models = list(dict.fromkeys(model for model, _ in ranked))
    configs = list(dict.fromkeys(config for _, config in ranked))
    for axis, metric in zip(axes[0], TABLE_RANKING_METRICS, strict=True):
        width = 0.8 / max(len(configs), 1)
        for index, config in enumerate(configs):
            values = [
                (results[(m, config)]["ranking"] or {}).get(metric, np.nan)
                if (m, config) in results
                else np.nan
                for m in models
            ]
            hatch = "" if config_has_critiques(config) else "//"
            axis.bar(
                np.arange(len(models)) + index * width, values, width, label=config, hatch=hatch
            )
        axis.set_xticks(np.arange(len(models)) + width * (len(configs) - 1) / 2, models)
        axis.set_title(metric)
        if configs:
            axis.legend(fontsize=7)
    written = [run for run, result in results.items() if result["text"]]
    kinds = [k for k in TABLE_KINDS if any(k in results[run]["text"] for run in written)]
    for axis, metric in zip(axes[1], metrics.TEXT_METRICS, strict=True):
        width = 0.8 / max(len(written), 1)
        for index, (model, config) in enumerate(written):
            values = [
                results[(model, config)]["text"].get(k, {}).get(metric, np.nan) for k in kinds
            ]
            hatch = "" if config_has_critiques(config) else "//"
            axis.bar(
                np.arange(len(kinds)) + index * width,
                values,
                width,
                label=f"{model} / {config}",
                hatch=hatch,
            )
        labels = [KIND_TITLES[k].replace(" ", "\n", 1) for k in kinds]
        axis.set_xticks(np.arange(len(kinds)) + width * (len(written) - 1) / 2, labels, fontsize=8)
        axis.set_title(metric)
        if written:
            axis.legend(fontsize=7)
    if title:
        fig.suptitle(title, color="tab:red", fontweight="bold")
    bottom = 0.0
    if notes:
        text = "\n".join(textwrap.fill(note, 220) for note in notes)
        fig.text(0.01, 0.005, text, fontsize=7, va="bottom", ha="left")
        bottom = 0.025 * (text.count("\n") + 1)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    _save_figure(fig, path)


def _save_figure(fig, path: str) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as partial:
        fig.savefig(partial, dpi=100)
    plt.close(fig)


def _build_report(dataset_dir) -> dict:
    """The folder's `build_report.json` ({} for a folder without one, or a Hub id)."""
    report = Path(dataset_dir) / "build_report.json"
    return json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}


def encoder_name(encoder) -> str:
    """What computes SemSim: the default sentence encoder, a name or path, or a model's class."""
    if encoder is None:
        return DEFAULT_ENCODER
    return encoder if isinstance(encoder, str) else type(encoder).__name__


def run_table(
    dataset_dir,
    split: str,
    runs: list[tuple[str, str, str]],
    out: str,
    encoder=None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    first: int | None = None,
) -> str:
    """Evaluate every (model, config, path) run and write table.md, results.json and plots.png.

    Runs already in `out/results.json` (same dataset, split and `first`) are kept and shown beside
    the new ones; a new run with the (model, config) of an earlier one replaces it only with
    `overwrite`. `first`: score the first N users of the split only, for every run.
    """
    if first is not None and first < 1:
        raise ValueError(f"--first must be a positive number of users, got {first}")
    _refuse_repeated_runs(runs)
    semsim = encoder_name(encoder)
    earlier = _earlier_runs(out, dataset_dir, split, runs, overwrite, log, first, semsim)
    results, splits, catalogs, cache = {}, {}, {}, {}
    for model, config, path in runs:
        if config not in splits:
            splits[config] = load_split(dataset_dir, config, split)
            catalogs[config] = frozenset(catalog_item_ids(dataset_dir, config))
        predictions = read_predictions(path)
        results[(model, config)] = evaluate_run(
            splits[config], predictions, catalogs[config], encoder, cache, first
        )
    records = earlier + [
        {
            "model": m,
            "config": c,
            "predictions": p,
            "split_users": splits[c].num_rows,
            **results[(m, c)],
        }
        for m, c, p in runs
    ]
    results = {(r["model"], r["config"]): r for r in records}
    synthetic = is_synthetic_build(dataset_dir)
    notes = (
        table_notes(dataset_dir, split, list(results))
        + _narrated_target_notes(results)
        + _unscored_notes(results, split)
    )
    if any(result["text"] for result in results.values()):
        notes.insert(
            0,
            f"SemSim: mean cosine of {semsim} embeddings (the paper used Gecko: absolute values "
            "differ from its tables).",
        )
    caption = subset_caption(split, first, {r["config"]: r["split_users"] for r in records})
    table = results_table(results)
    if caption:
        table = caption + "\n\n" + table
    if notes:
        table += "\n\n" + "\n".join(f"- {note}" for note in notes)
    if synthetic:
        table = SYNTHETIC_NOTE + "\n\n" + table
    os.makedirs(out, exist_ok=True)
    write_text(os.path.join(out, "table.md"), table + "\n")
    payload = {
        "dataset": os.fspath(dataset_dir),
        # What the data is, wherever the folder lies: what a later call to this --out compares.
        "fingerprints": _build_report(dataset_dir).get("fingerprints"),
        "split": split,
        "synthetic": synthetic,
        "first_users": first,
        "semantic_similarity_encoder": semsim,
        "notes": ([SYNTHETIC_NOTE.strip("*")] if synthetic else [])
        + ([caption] if caption else [])
        + notes,
        "runs": records,
    }
    write_json(os.path.join(out, "results.json"), payload)
    plot_results(
        results, os.path.join(out, "plots.png"), "SYNTHETIC data" if synthetic else None, notes
    )
    return table


def subset_caption(split: str, first: int | None, split_users: dict[str, int | None]) -> str:
    """The table's caption when it scores a subset of the split's users ("" when all)."""
    if first is None:
        return ""
    sizes = sorted({n for n in split_users.values() if n is not None})
    if sizes and first >= max(sizes):
        return ""
    of = f" of {sizes[0]:,}" if len(sizes) == 1 else ""
    return (
        f"Scored on the first {first:,}{of} {split} users of each config (the same users for "
        "every run of this table)."
    )


def _refuse_repeated_runs(runs: list[tuple[str, str, str]]) -> None:
    first: dict[tuple[str, str], tuple[int, str]] = {}
    for number, (model, config, path) in enumerate(runs, start=1):
        if not model.strip() or any(mark in model for mark in "|\n"):
            raise ValueError(
                f"run {number} ({path}): model name {model!r} cannot head a table column; "
                "name it with some text and no '|' or line break"
            )
        if (model, config) in first:
            earlier_number, earlier_path = first[(model, config)]
            raise ValueError(
                f"runs {earlier_number} ({earlier_path}) and {number} ({path}) are both model "
                f"{model!r} on config {config!r}: one would hide the other in the table; "
                "give them different model names"
            )
        first[(model, config)] = (number, path)


def _earlier_runs(
    out: str,
    dataset_dir,
    split: str,
    runs,
    overwrite: bool,
    log: Callable[[str], None],
    first: int | None = None,
    semsim: str = DEFAULT_ENCODER,
) -> list[dict]:
    """The runs of `out/results.json` to keep beside this call's runs."""
    path = Path(out) / "results.json"
    if not path.exists():
        return []
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
        earlier_runs, earlier_dataset = earlier["runs"], earlier["dataset"]
        fields = {"model", "config", "predictions", "ranking", "text"}
        if not all(fields <= run.keys() for run in earlier_runs):
            raise KeyError(f"a run lacks one of {sorted(fields)}")
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path} is not a results file of `regen eval` ({error}); move it away or use "
            "another --out"
        ) from None
    if not _same_dataset(earlier, dataset_dir) or earlier.get("split") != split:
        raise ValueError(
            f"{path} holds results of {earlier_dataset} ({earlier.get('split')}), not of "
            f"{os.fspath(dataset_dir)} ({split}); use another --out"
        )
    if earlier.get("first_users") != first:
        raise ValueError(
            f"{path} scores {_scored(earlier.get('first_users'))} of the split, this call "
            f"{_scored(first)}: a table compares runs on the same users; use another --out"
        )
    if earlier.get("semantic_similarity_encoder", semsim) != semsim:
        raise ValueError(
            f"{path} holds SemSim figures of {earlier['semantic_similarity_encoder']}, this call "
            f"computes them with {semsim}: use another --out"
        )
    new = {(model, config): run_path for model, config, run_path in runs}
    kept = []
    for run in earlier_runs:
        key = (run["model"], run["config"])
        if key not in new:
            kept.append(run)
        elif not overwrite:
            raise ValueError(
                f"{path} already holds model {key[0]!r} on config {key[1]!r} "
                f"(from {run['predictions']}); pass --overwrite to replace it with {new[key]}"
            )
        else:
            log(f"replacing the earlier {key[0]} / {key[1]} run (from {run['predictions']})")
    if kept:
        log(
            f"keeping {len(kept)} earlier runs of {path}: "
            + ", ".join(f"{run['model']} / {run['config']}" for run in kept)
        )
    return kept


def _same_dataset(earlier: dict, dataset_dir) -> bool:
    """Whether a results file's dataset is `dataset_dir`: the same data fingerprints where both
    builds record them (the same folder named from elsewhere, or a copy; not a rebuild with other
    rows), else the same path."""
    fingerprints = _build_report(dataset_dir).get("fingerprints")
    if fingerprints and earlier.get("fingerprints"):
        return fingerprints == earlier["fingerprints"]
    return os.path.realpath(earlier["dataset"]) == os.path.realpath(os.fspath(dataset_dir))


def _scored(first: int | None) -> str:
    return "all users" if first is None else f"the first {first} users"


def table_notes(dataset_dir, split: str, runs: Collection[tuple[str, str]]) -> list[str]:
    """Footnotes for a table of these (model, config) runs: what its figures must not be read as."""
    configs_by_note: dict[str, list[str]] = {}
    for config in dict.fromkeys(config for model, config in runs if model == NEAREST_NEIGHBOUR):
        pool = neighbour_pool(
            load_split(dataset_dir, config, "train"), load_split(dataset_dir, config, split)
        )
        configs_by_note.setdefault(neighbour_note(pool, split), []).append(config)
    return [f"{', '.join(configs)}: {note}" for note, configs in configs_by_note.items()]


def _narrated_target_notes(results: dict[tuple[str, str], dict]) -> list[str]:
    """A footnote naming the runs whose narratives are about the held-out item itself."""
    given = [
        f"{model} ({config})"
        for (model, config), result in results.items()
        if result.get("narrated_item") == "target"
    ]
    if not given:
        return []
    return [
        f"{', '.join(given)}: narratives about each user's held-out item, given to the model, not "
        "about its own recommendation (an upper bound for a system that must also find the item)"
    ]


def _unscored_notes(results: dict[tuple[str, str], dict], split: str) -> list[str]:
    """A footnote per narrative kind whose users lack reference texts (none has any in a
    leave-one-out validation split): their cells are blank or cover part of the split."""
    models: dict[tuple[str, str, int, int], list[str]] = {}
    for (model, config), result in results.items():
        for kind, scores in result["text"].items():
            if scores["skipped"]:
                key = (config, kind, scores["skipped"], result["users"])
                models.setdefault(key, []).append(model)
    return [
        f"{config}, {KIND_TITLES[kind]}: {skipped:,} of {users:,} {split} users have no reference "
        + ("text, so it is not scored" if skipped == users else "text; scored on the others")
        + f" ({', '.join(names)})"
        for (config, kind, skipped, users), names in models.items()
    ]


def write_baselines(
    dataset_dir, config: str, split: str, out: str, k: int = 100, seed: int = 0, encoder=None
) -> list[tuple[str, str, str]]:
    """Predictions of the three baselines for one config and split; returns their runs."""
    import datasets

    from regen_models import baselines

    check_user_config(config)
    dataset = datasets.load_dataset(os.fspath(dataset_dir), config)
    if split not in dataset:
        raise ValueError(
            f"--split {split!r}: config {config} of {dataset_dir} has {sorted(dataset)}"
        )
    rows = dataset[split]
    user_ids = rows["user_id"]
    written = []
    path = os.path.join(out, "most_popular", f"{config}.jsonl")
    made_for = {"config": config, "split": split}
    popular = baselines.most_popular(dataset["train"], len(user_ids), k)
    write_predictions(path, user_ids, popular, **made_for)
    written.append(("most_popular", config, path))
    path = os.path.join(out, "random", f"{config}.jsonl")
    catalog = catalog_item_ids(dataset_dir, config)
    ranked = baselines.random_ranking(catalog, len(user_ids), k, seed)
    write_predictions(path, user_ids, ranked, **made_for)
    written.append(("random", config, path))
    # Borrow narratives from the train split when it has them (user-disjoint builds); under
    # leave-one-out only the evaluated split has them, so neighbours come from other users there.
    pool = dataset[neighbour_pool(dataset["train"], rows)]
    kinds = [kind for kind in NARRATIVE_KINDS if kind in baselines.narrative_kinds(rows)]
    if kinds:
        narratives = baselines.nearest_neighbour_narratives(rows, pool, kinds, encoder)
        path = os.path.join(out, NEAREST_NEIGHBOUR, f"{config}.jsonl")
        write_predictions(path, user_ids, narratives=narratives, **made_for)
        written.append((NEAREST_NEIGHBOUR, config, path))
    else:
        print(f"note: {config} {split} has no narratives: {NEAREST_NEIGHBOUR} has none to borrow")
    return written


def rater_report(dataset_dir, config: str, out: str) -> str:
    """Distribution of the auto-rater scores carried in the dataset, per group and attribute."""
    import datasets

    check_user_config(config)
    dataset = datasets.load_dataset(os.fspath(dataset_dir), config)
    seen, counts = set(), defaultdict(lambda: np.zeros(8, dtype=np.int64))
    outside: Counter = Counter()  # (group, attribute) -> scores off the 1-7 scale
    for split in dataset.values():
        for user_id, rater in zip(split["user_id"], split["rater"], strict=True):
            # Only rows whose target is the last purchase carry scores (leave-one-out: test).
            scored = any(v is not None for group in (rater or {}).values() for v in group.values())
            if user_id in seen or not scored:
                continue
            seen.add(user_id)
            for group, attributes in RATER_ATTRIBUTES.items():
                for attribute in attributes:
                    score = (rater.get(group) or {}).get(attribute)
                    if score is not None and 1 <= score <= 7:
                        counts[(group, attribute)][score] += 1
                    elif score is not None:
                        outside[(group, attribute)] += 1
    if not counts:
        raise ValueError(f"{dataset_dir} ({config}) carries no auto-rater scores")
    lines = [f"Auto-rater scores of {len(seen):,} users ({config}); share of users per score", ""]
    lines.append(
        "| group | attribute | n | " + " | ".join(str(s) for s in range(1, 8)) + " | share >= 6 |"
    )
    lines.append("|---|---|---|" + "---|" * 8)
    for (group, attribute), histogram in counts.items():
        total = histogram.sum()
        shares = " | ".join(f"{histogram[s] / total:.0%}" for s in range(1, 8))
        lines.append(
            f"| {group} | {attribute} | {total:,} | {shares} | {histogram[6:].sum() / total:.0%} |"
        )
    if outside:
        left_out = ", ".join(f"{g}/{a} {n:,}" for (g, a), n in outside.items())
        lines += ["", f"Scores off the 1-7 scale, left out of the shares: {left_out}."]
    table = "\n".join(lines)
    synthetic = is_synthetic_build(dataset_dir)
    if synthetic:
        table = SYNTHETIC_NOTE + "\n\n" + table
    os.makedirs(out, exist_ok=True)
    write_text(os.path.join(out, f"rater_{config}.md"), table + "\n")
    _plot_rater(
        counts, os.path.join(out, f"rater_{config}.png"), "SYNTHETIC data" if synthetic else None
    )
    return table


def _plot_rater(counts, path: str, title: str | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(group for group, _ in counts))
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for axis, group in zip(axes[0], groups, strict=True):
        attributes = [a for g, a in counts if g == group]
        width = 0.8 / len(attributes)
        for index, attribute in enumerate(attributes):
            histogram = counts[(group, attribute)][1:]
            axis.bar(
                np.arange(1, 8) + index * width - 0.4,
                histogram / histogram.sum(),
                width,
                label=attribute,
            )
        axis.set(
            title=f"rater: {group}",
            xlabel="score (1-7)",
            ylabel="share of users",
            xticks=range(1, 8),
        )
        axis.legend(fontsize=7)
    if title:
        fig.suptitle(title, color="tab:red", fontweight="bold")
    fig.tight_layout()
    _save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# Command line


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        description="Score prediction files against a folder built by `regen dataset build`. "
        "A file (JSON lines, gzipped or not) is refused, with its line, when it names a user "
        "that is not in the split, misses or repeats one, ranks fewer than 10 items or an item "
        "twice, or ranks an item outside the category's catalog. Tables of a folder whose build "
        "marks it SYNTHETIC say so.",
    )
    # The table's options keep dests of their own: a subcommand's options of the same names
    # would overwrite them, and one given before the subcommand must be refused, not dropped.
    parser.add_argument(
        "--dataset",
        dest="table_dataset",
        metavar="DATASET",
        help="a folder built by `regen dataset build` (default: regen)",
    )
    parser.add_argument(
        "--split", dest="table_split", metavar="SPLIT", help="the split scored (default: test)"
    )
    parser.add_argument(
        "--run",
        dest="table_run",
        nargs=3,
        action="append",
        metavar=("MODEL", "CONFIG", "PATH"),
        help="a prediction file; repeatable, each MODEL and CONFIG pair once",
    )
    parser.add_argument(
        "--out",
        dest="table_out",
        metavar="OUT",
        help="folder for table.md, results.json and plots.png (default: eval_out); runs already "
        "in its results.json (same dataset and split) are kept and shown beside the new ones",
    )
    parser.add_argument(
        "--overwrite",
        dest="table_overwrite",
        action="store_true",
        help="replace a run of --out's results.json that has the model and config of a new run "
        "(without it, such a run is refused)",
    )
    parser.add_argument(
        "--first",
        dest="table_first",
        type=int,
        default=None,
        metavar="N",
        help="score only the first N users of the split, the same N for every run of --out (for "
        "models whose text generation is slow: predict them with `regen predict --limit N`); "
        "the table's caption and results.json say so",
    )
    parser.set_defaults(func=_table)
    commands = parser.add_subparsers(dest="eval_command")

    baselines = commands.add_parser(
        "baselines", help="write the predictions of the training-free baselines"
    )
    baselines.add_argument(
        "--dataset", default="regen", help="a built folder (default: %(default)s)"
    )
    baselines.add_argument(
        "--config", action="append", required=True, help="a config to predict; repeatable"
    )
    baselines.add_argument("--split", default="test", help="(default: %(default)s)")
    baselines.add_argument(
        "--k", type=int, default=100, help="length of the ranked lists (default: %(default)s)"
    )
    baselines.add_argument(
        "--seed", type=int, default=0, help="of the random ranking (default: %(default)s)"
    )
    baselines.add_argument(
        "--out",
        default="predictions",
        help="folder for BASELINE/CONFIG.jsonl (default: %(default)s)",
    )
    baselines.set_defaults(func=_baselines)

    rater = commands.add_parser("rater", help="plot the distribution of the auto-rater scores")
    rater.add_argument("--dataset", default="regen", help="a built folder (default: %(default)s)")
    rater.add_argument("--config", default="office", help="(default: %(default)s)")
    rater.add_argument(
        "--out", default="eval_out", help="folder for the plot and table (default: %(default)s)"
    )
    rater.set_defaults(func=_rater)

    from training import fusion_ablation  # it imports this module: imported here, not on top

    fusion_ablation.add_parser(commands)
    for name, command in commands.choices.items():
        command.set_defaults(func=_refusing_table_options(name, command))


def _table(args) -> None:
    if not args.table_run:
        raise ValueError("give at least one --run MODEL CONFIG PATH")
    runs = [tuple(run) for run in args.table_run]
    dataset, split = args.table_dataset or "regen", args.table_split or "test"
    out = args.table_out or "eval_out"
    first, overwrite = args.table_first, args.table_overwrite
    print(run_table(dataset, split, runs, out, overwrite=overwrite, first=first))
    print(f"\nwritten: {out}/table.md, results.json, plots.png")


_TABLE_OPTIONS = {
    "table_dataset": "--dataset",
    "table_split": "--split",
    "table_out": "--out",
    "table_run": "--run",
    "table_first": "--first",
    "table_overwrite": "--overwrite",
}


def _refusing_table_options(name: str, command: argparse.ArgumentParser):
    """The function of the subcommand `name`, refusing the table's options given before its
    name: argparse reads them as the table's, and the subcommand would run without them."""
    func = command.get_default("func")

    def run(args) -> None:
        given = [
            flag
            for dest, flag in _TABLE_OPTIONS.items()
            if getattr(args, dest, None) is not None and getattr(args, dest) is not False
        ]
        if given:
            own = [flag for flag in given if flag in command._option_string_actions]
            where = (
                f"give {', '.join(own)} after the subcommand (regen eval {name} {own[0]} ...)"
                if own
                else f"`{name}` has no such option"
            )
            raise ValueError(
                f"{', '.join(given)} before `{name}`: of the table, not of `{name}`; {where}"
            )
        func(args)

    return run


def _baselines(args) -> None:
    runs = []
    for config in args.config:
        runs += write_baselines(args.dataset, config, args.split, args.out, args.k, args.seed)
    for model, config, path in runs:
        print(f"--run {model} {config} {path}")
    for note in table_notes(args.dataset, args.split, [(m, c) for m, c, _ in runs]):
        print(f"note: {note}")
    if is_synthetic_build(args.dataset):
        print(f"note: {SYNTHETIC_NOTE.strip('*')}")


def _rater(args) -> None:
    print(rater_report(args.dataset, args.config, args.out))
    print(f"\nwritten: {args.out}/rater_{args.config}.md and .png")
