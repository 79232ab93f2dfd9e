"""`regen eval fusion-ablation`: the ablation of "Beyond Retrieval" (Table 1) and its embedding
analysis (Figure 6) for the fusion narrator.

    regen eval fusion-ablation --dataset demo_out/regen-users --config office \\
        --recipe training/recipes/fusion/cpu.yaml --first 20 --out eval_out/fusion-ablation

For each config, the three variants (`--signals cf`, `content`, `both`) are trained with one
recipe (`training/train_fusion.py`), write the narratives of the evaluated split's users
(`--first N`: the first N only), and are scored as `regen eval` scores any run (BLEU, ROUGE-Lsum,
semantic similarity per narrative kind). The table has a row per kind and metric, a column per
variant, and the relative change of CF + content against each alone. The analysis reads the
CF + content model's adapter: its first layer W = [W_cf | W_content] maps an item's fused vector
to W_cf x_cf + W_content x_content (+ a bias); for every item WALS saw, the share of the norm
that comes from each part (‖W_cf x_cf‖ / (‖W_cf x_cf‖ + ‖W_content x_content‖)) is drawn as a
histogram: the paper's Figure 6 (exact for the linear adapter the paper analyses; for the MLP it
is the first layer's input to the nonlinearity). The content part is the item's own vector: the
reviews a history purchase adds to it belong to a user, not to the item. Written to `--out`:
`table.md`, `results.json`, `figure6.png`, the checkpoints and the prediction files.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from regen_dataset.files import atomic_path, write_json, write_text
from regen_models.predictions import read_predictions, write_predictions

# The sentence encoder of the similarity metric (None: regen_models.metrics' default).
DEFAULT_ENCODER = None
VARIANTS = {"cf": "CF", "content": "Content", "both": "CF + Content"}
METRIC_NAMES = {"BLEU": "BLEU", "ROUGE": "ROUGE-LSum", "SemSim": "Similarity"}


def train_variant(
    dataset: str, config: str, signals: str, recipe: str, out: Path, extra: list[str]
) -> Path:
    from training import train_fusion

    checkpoint = out / "checkpoints" / config / signals
    train_fusion.run(
        ["--config", recipe, "--dataset_name", dataset, "--dataset_config", config,
         "--signals", signals, "--output_dir", str(checkpoint), "--overwrite_output_dir", "true",
         *extra]
    )  # fmt: skip
    return checkpoint


def predict_variant(
    checkpoint: Path, rows, path: Path, batch_size: int, max_new_tokens: int | None = None
) -> dict[str, list[str]]:
    from regen_models.fusion.narrator import FusionNarrator

    narrator = FusionNarrator.from_pretrained(checkpoint, device="auto")  # CUDA where there is one
    narratives = {
        kind: narrator.write(rows, kind, batch_size=batch_size, max_new_tokens=max_new_tokens)
        for kind in narrator.kinds
    }
    made_for = {"config": rows.info.config_name, "split": str(rows.split)}
    write_predictions(
        path, rows["user_id"], narratives=narratives, narrated_item="target", **made_for
    )
    return narratives


def signal_shares(checkpoint: Path) -> dict:
    """The CF and content shares of the projected norm for every item WALS saw (in float32,
    whatever dtype the checkpoint was saved in: numpy has no bfloat16)."""
    import torch

    from regen_models.fusion import FusionForCausalLM

    model = FusionForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    seen = model.inputs.cf_factors.abs().sum(dim=1) > 0
    items = torch.nonzero(seen)[:, 0]
    cf, content = model.signal_norms(items)
    cf_share = (cf / (cf + content).clamp(min=1e-12)).numpy()
    return {
        "items": len(items),
        "adapter": model.config.adapter,
        "cf_share": cf_share.tolist(),
        "cf_share_mean": float(cf_share.mean()),
        "cf_share_median": float(np.median(cf_share)),
        "content_share_mean": float(1 - cf_share.mean()),
    }


def relative_change(new: float, old: float) -> str:
    if not old:
        return "–"
    return f"{(new - old) / abs(old) * 100:+.1f}%"


def ablation_table(config: str, results: dict[str, dict]) -> str:
    """The paper's Table 1 layout for one config: {signals: evaluate_run(...)}."""
    from training.evaluate import KIND_TITLES

    lines = [
        f"| Output feature ({config}) | Metric | CF | Content | CF + Content | (%) vs CF "
        "| (%) vs Content |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    kinds = [k for k in results["both"]["text"] if results["both"]["text"][k].get("n")]
    for kind in kinds:
        label = f"{KIND_TITLES[kind]} (n={results['both']['text'][kind]['n']})"
        for metric, name in METRIC_NAMES.items():
            values = {s: results[s]["text"].get(kind, {}).get(metric) for s in VARIANTS}
            digits = 3 if metric == "SemSim" else 2
            cells = ["–" if values[s] is None else f"{values[s]:.{digits}f}" for s in VARIANTS]
            both = values["both"]
            changes = [
                "–" if both is None or values[s] is None else relative_change(both, values[s])
                for s in ("cf", "content")
            ]
            lines.append(f"| {label} | {name} | " + " | ".join(cells + changes) + " |")
            label = ""
    return "\n".join(lines)


def plot_shares(shares: dict[str, dict], path: Path, title: str | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(shares), figsize=(6 * len(shares), 4), squeeze=False)
    bins = np.linspace(0, 1, 41)
    for axis, (config, found) in zip(axes[0], shares.items(), strict=True):
        cf = np.asarray(found["cf_share"])
        axis.hist(cf, bins=bins, alpha=0.7, label=f"CF (mean {cf.mean():.2f})")
        axis.hist(1 - cf, bins=bins, alpha=0.7, label=f"content (mean {1 - cf.mean():.2f})")
        axis.set(
            title=f"{config}: {found['items']:,} items, {found['adapter']} adapter",
            xlabel="share of the projected norm",
            ylabel="items",
        )
        axis.legend(fontsize=8)
    fig.suptitle(
        "Share of each soft token's projected norm: CF vs content"
        + (f"\n{title}" if title else ""),
        color="tab:red" if title else "black",
    )
    fig.tight_layout()
    with atomic_path(path) as partial:
        fig.savefig(partial, dpi=100)
    plt.close(fig)


def run_ablation(
    dataset: str,
    configs: list[str],
    recipe: str,
    out: str | os.PathLike,
    *,
    split: str = "test",
    first: int | None = None,
    train_args: list[str] = (),
    encoder=None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    log=print,
) -> str:
    from regen_dataset.export import is_synthetic_build
    from regen_models.items import catalog_item_ids
    from training.arguments import recipe_file
    from training.evaluate import SYNTHETIC_NOTE, evaluate_run, load_split

    if first is not None and first < 1:
        raise ValueError(f"--first must be a positive number of users, got {first}")
    recipe = recipe_file("fusion", recipe)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    synthetic = is_synthetic_build(dataset)
    payload: dict = {
        "dataset": os.fspath(dataset),
        "split": split,
        "first_users": first,
        "recipe": recipe,
        "train_args": list(train_args),
        "synthetic": synthetic,
        "configs": {},
    }
    tables, shares, cache = [], {}, {}
    for config in configs:
        rows = load_split(dataset, config, split)
        if first is not None:
            rows = rows.select(range(min(first, len(rows))))
        catalog = frozenset(catalog_item_ids(dataset, config))
        results, runs = {}, {}
        for signals in VARIANTS:
            log(f"== {config}: training the {VARIANTS[signals]} variant")
            checkpoint = train_variant(dataset, config, signals, recipe, out, list(train_args))
            path = out / "predictions" / config / f"fusion-{signals}.jsonl"
            predict_variant(checkpoint, rows, path, batch_size, max_new_tokens)
            results[signals] = evaluate_run(rows, read_predictions(path), catalog, encoder, cache)
            runs[signals] = {"checkpoint": str(checkpoint), "predictions": str(path)}
        shares[config] = signal_shares(out / "checkpoints" / config / "both")
        tables.append(ablation_table(config, results))
        payload["configs"][config] = {
            "variants": {s: {**runs[s], **results[s]} for s in VARIANTS},
            "projection": {k: v for k, v in shares[config].items() if k != "cf_share"},
        }
    table = "\n\n".join(tables)
    caption = (
        f"Fusion narrator ablation on {os.fspath(dataset)} ({split}"
        + (f", first {first} users" if first else "")
        + f"), recipe {recipe}."
    )
    analysis = "\n".join(
        f"- {config}: the CF part carries {found['cf_share_mean']:.0%} of the projected norm on "
        f"average (median {found['cf_share_median']:.0%}) over {found['items']:,} items; the "
        f"content part {found['content_share_mean']:.0%}."
        for config, found in shares.items()
    )
    text = f"{caption}\n\n{table}\n\nSoft-token analysis (figure6.png):\n{analysis}"
    if synthetic:
        text = SYNTHETIC_NOTE + "\n\n" + text
    write_text(out / "table.md", text + "\n")
    write_json(out / "results.json", payload)
    plot_shares(shares, out / "figure6.png", "SYNTHETIC data" if synthetic else None)
    return text


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "fusion-ablation",
        help="train the fusion narrator's CF / content / CF + content variants and compare them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", required=True, help="a folder built with user_disjoint")
    parser.add_argument("--config", action="append", required=True, help="repeatable")
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--recipe",
        default=str(Path(__file__).parent / "recipes" / "fusion" / "cpu.yaml"),
        help="the training recipe of all three variants: a file, or a shipped fusion recipe by "
        "name (tiny, cpu, paper)",
    )
    parser.add_argument("--first", type=int, default=None, metavar="N", help="first N users")
    parser.add_argument("--base_model", "--base-model", default=None, help="overrides the recipe's")
    parser.add_argument("--max_steps", "--max-steps", type=int, default=None)
    parser.add_argument("--batch_size", "--batch-size", type=int, default=8, help="generation")
    parser.add_argument(
        "--max_new_tokens",
        "--max-new-tokens",
        type=int,
        default=None,
        help="narrative length limit (default: each kind's, recorded in training)",
    )
    parser.add_argument("--out", default="eval_out/fusion-ablation")
    parser.set_defaults(func=_ablation)


def _ablation(args) -> None:
    extra = []
    if args.base_model:
        extra += ["--base_model", args.base_model]
    if args.max_steps is not None:
        extra += ["--max_steps", str(args.max_steps)]
    text = run_ablation(
        args.dataset,
        args.config,
        args.recipe,
        args.out,
        split=args.split,
        first=args.first,
        train_args=extra,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        encoder=DEFAULT_ENCODER,
    )
    print(text)
    print(f"\nwritten: {args.out}/table.md, results.json, figure6.png")
