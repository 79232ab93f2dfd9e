"""Statistics of a built REGEN folder: seed 002 Table 1 and a little more, with a plot."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regen_dataset.schema import CONFIG_NAMES, NARRATIVE_KINDS, SPLIT_NAMES


@dataclass
class ConfigStats:
    config: str
    users: int
    items: int
    interactions_per_user: np.ndarray  # one value per user
    critiqued_pairs: int
    adjacent_pairs: int
    narrative_words: dict[str, np.ndarray]  # kind -> words per non-null narrative
    rows: dict[str, int]

    @property
    def critique_share(self) -> float:
        return self.critiqued_pairs / max(self.adjacent_pairs, 1)

    def lines(self) -> list[str]:
        lengths = self.interactions_per_user
        out = [
            f"{self.config}: {self.users:,} users, {self.items:,} items, "
            f"{lengths.mean():.2f} interactions per user (median {np.median(lengths):.0f}, "
            f"min {lengths.min()}, max {lengths.max()})",
            "  rows: " + ", ".join(f"{split} {n:,}" for split, n in self.rows.items()),
            f"  critiques: {self.critiqued_pairs:,} of {self.adjacent_pairs:,} adjacent pairs "
            f"({self.critique_share:.1%})",
        ]
        if self.config.endswith("_no_critique"):  # same narratives as its category's config
            return out
        for kind, words in self.narrative_words.items():
            if len(words):
                out.append(
                    f"  {kind:<28} {len(words):>8,} texts, {words.mean():6.1f} words on average "
                    f"(median {np.median(words):.0f})"
                )
            else:
                out.append(f"  {kind:<28} none")
        return out


def configs_in_folder(folder: str | os.PathLike) -> list[str]:
    data = os.path.join(folder, "data")
    if not os.path.isdir(data):
        raise FileNotFoundError(
            f"{folder} has no data/ folder: build it with `regen dataset build`"
        )
    return [name for name in CONFIG_NAMES if os.path.isdir(os.path.join(data, name))]


def config_stats(dataset_dict, config: str) -> ConfigStats:
    """Stats over every user once, from the row that sees most of their sequence."""
    tables = {
        split: dataset_dict[split].data.table for split in SPLIT_NAMES if split in dataset_dict
    }
    table = pa.concat_tables(tables.values())
    lengths = pc.add(pc.list_value_length(table.column("history")), 1).to_numpy(
        zero_copy_only=False
    )
    user_ids = np.asarray(table.column("user_id").to_pylist(), dtype=object)
    order = np.lexsort((-lengths, user_ids))  # per user, the longest row first
    first = np.ones(len(order), dtype=bool)
    first[1:] = user_ids[order][1:] != user_ids[order][:-1]
    longest = pa.array(order[first])
    full = table.take(longest)
    history = full.column("history").combine_chunks()
    items = pc.unique(
        pa.chunked_array(
            [
                pc.list_flatten(history).field("item_id"),
                full.column("target").combine_chunks().field("item_id"),
            ]
        )
    )
    critiques = pc.list_flatten(history).field("critique").null_count
    n_history = len(pc.list_flatten(history))
    target_critique = full.column("critique").combine_chunks()
    critiqued = (n_history - critiques) + (len(target_critique) - target_critique.null_count)
    narrative_words = {}
    narratives = table.column("narratives").combine_chunks()
    for kind in NARRATIVE_KINDS:
        texts = narratives.field(kind).drop_null()
        narrative_words[kind] = (
            pc.list_value_length(pc.utf8_split_whitespace(texts)).to_numpy(zero_copy_only=False)
            if len(texts)
            else np.array([], dtype=np.int64)
        )
    return ConfigStats(
        config=config,
        users=len(full),
        items=len(items),
        interactions_per_user=lengths[order[first]],
        critiqued_pairs=critiqued,
        adjacent_pairs=int((lengths[order[first]] - 1).sum()),
        narrative_words=narrative_words,
        rows={split: t.num_rows for split, t in tables.items()},
    )


def describe_folder(folder: str | os.PathLike, configs: list[str], plot_path: str | None) -> str:
    """Load each config with `load_dataset` and describe it; save a plot if asked."""
    import datasets

    stats = [
        config_stats(datasets.load_dataset(os.fspath(folder), config), config) for config in configs
    ]
    if plot_path:
        report_path = os.path.join(folder, "build_report.json")
        synthetic = os.path.exists(report_path) and json.load(open(report_path)).get("synthetic")
        plot_stats(stats, plot_path, title="SYNTHETIC sample data" if synthetic else None)
    return "\n".join(line for s in stats for line in s.lines())


def plot_stats(stats: list[ConfigStats], path: str, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    if title:
        fig.suptitle(title, color="tab:red", fontweight="bold")
    every_config, stats = stats, [s for s in stats if not s.config.endswith("_no_critique")]
    for s in stats:
        bins = np.arange(1, max(s.interactions_per_user.max(), 2) + 2) - 0.5
        axes[0].hist(s.interactions_per_user, bins=bins, alpha=0.5, label=s.config)
    axes[0].set(title="Interactions per user", xlabel="interactions", ylabel="users")
    axes[0].legend()
    width = 0.8 / max(len(stats), 1)
    kinds = list(NARRATIVE_KINDS)
    for index, s in enumerate(stats):
        means = [s.narrative_words[k].mean() if len(s.narrative_words[k]) else 0 for k in kinds]
        axes[1].bar(np.arange(len(kinds)) + index * width, means, width, label=s.config)
    axes[1].set_xticks(np.arange(len(kinds)) + width * (len(stats) - 1) / 2)
    axes[1].set_xticklabels([k.replace("_", "\n") for k in kinds], fontsize=8)
    axes[1].set(title="Narrative length", ylabel="words (mean)")
    axes[1].legend()
    axes[2].bar([s.config for s in every_config], [100 * s.critique_share for s in every_config])
    axes[2].set(title="Adjacent pairs with a critique", ylabel="%")
    axes[2].tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    partial = f"{path}.partial.png"
    fig.savefig(partial, dpi=110)
    plt.close(fig)
    os.replace(partial, path)
