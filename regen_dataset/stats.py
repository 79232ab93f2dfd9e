"""Statistics of a built REGEN folder: Table 1 of the REGEN paper, realism figures, and a plot.

The realism figures let a real build and a synthetic one be compared side by side:
- item concentration: the share of interactions taken by the top 1% and 10% of items, and the Gini
  coefficient of per-item interaction counts (Amazon review data is strongly long-tailed);
- repeat purchases: the share of interactions whose item the same user had bought before;
- similar adjacent pairs: the share of adjacent purchases whose category paths agree on at least
  `SIMILAR_LEVELS` levels (the only pairs that may carry a critique);
- critiques, as two different ratios (see `CRITIQUE_RATIOS`);
- narrative variety: distinct sentence shapes per narrative kind, where a sentence's shape is its
  first three words, lower-cased, digits folded to 0 (`sentence_shape`). It needs no tagger, so it
  reads real and synthetic text alike: an LLM varies how its sentences open, a template does not.
Every figure is computed over each user once, from the row that sees most of their sequence.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regen_dataset.files import atomic_path
from regen_dataset.schema import (
    CONFIG_NAMES,
    NARRATIVE_KINDS,
    SIMILAR_LEVELS,
    SPLIT_NAMES,
    check_user_config,
)

CRITIQUE_RATIOS = (
    "critique ratios: 'per interaction' = critiques / all interactions; 'per similar pair' = "
    f"critiques / adjacent pairs whose category paths agree on >= {SIMILAR_LEVELS} levels"
)
SHAPE_SAMPLE = 1_000  # sentences per kind over which distinct shapes are counted
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9']+")


def sentence_shape(sentence: str) -> str:
    """A sentence's opening: its first three words, lower-cased, every digit as 0."""
    words = _WORD.findall(sentence.lower())[:3]
    return re.sub(r"[0-9]", "0", " ".join(words))


def split_sentences(text: str) -> list[str]:
    return [part for part in _SENTENCE_END.split(text.strip()) if part]


@dataclass
class ShapeStats:
    sentences: int  # sentences in every text of the kind
    distinct: int  # distinct shapes among SHAPE_SAMPLE sentences spread evenly over them
    top10_share: float  # share of all sentences whose shape is one of the 10 most common

    @classmethod
    def of(cls, texts: list[str]) -> ShapeStats:
        shapes = [sentence_shape(s) for text in texts for s in split_sentences(text)]
        if not shapes:
            return cls(0, 0, 0.0)
        sample = np.linspace(0, len(shapes) - 1, min(SHAPE_SAMPLE, len(shapes))).astype(int)
        top = Counter(shapes).most_common(10)
        return cls(
            sentences=len(shapes),
            distinct=len({shapes[i] for i in np.unique(sample)}),
            top10_share=sum(count for _, count in top) / len(shapes),
        )


@dataclass
class Realism:
    interactions: int
    top1_share: float  # of interactions, taken by the most bought 1% of items
    top10_share: float
    gini: float  # of per-item interaction counts
    repeat_share: float  # of interactions, of an item the same user bought before
    adjacent_pairs: int
    similar_pairs: int  # adjacent pairs matching on >= SIMILAR_LEVELS category levels
    critiques: int
    critiques_off_rule: int  # critiques on adjacent pairs that are not similar
    shapes: dict[str, ShapeStats] = field(default_factory=dict)
    item_counts: np.ndarray = field(default_factory=lambda: np.zeros(0))  # most bought first

    @property
    def similar_share(self) -> float:
        return self.similar_pairs / max(self.adjacent_pairs, 1)

    @property
    def critiques_per_interaction(self) -> float:
        return self.critiques / max(self.interactions, 1)

    @property
    def critiques_per_similar_pair(self) -> float:
        return self.critiques / max(self.similar_pairs, 1)

    def to_dict(self) -> dict:
        out = {
            key: getattr(self, key)
            for key in self.__dataclass_fields__
            if key not in ("shapes", "item_counts")
        }
        out |= {
            "similar_share": self.similar_share,
            "critiques_per_interaction": self.critiques_per_interaction,
            "critiques_per_similar_pair": self.critiques_per_similar_pair,
            "shapes": {kind: vars(stats) for kind, stats in self.shapes.items()},
        }
        return out


@dataclass
class ConfigStats:
    config: str
    users: int
    items: int
    interactions_per_user: np.ndarray  # one value per user
    narrative_words: dict[str, np.ndarray]  # kind -> words per non-null narrative
    rows: dict[str, int]
    realism: Realism

    def lines(self) -> list[str]:
        lengths, real = self.interactions_per_user, self.realism
        out = [
            f"{self.config}: {self.users:,} users, {self.items:,} items, "
            f"{lengths.mean():.2f} interactions per user (median {np.median(lengths):.0f}, "
            f"min {lengths.min()}, max {lengths.max()})",
            "  rows: " + ", ".join(f"{split} {n:,}" for split, n in self.rows.items()),
            f"  item concentration: top 1% of items take {real.top1_share:.1%} of interactions, "
            f"top 10% take {real.top10_share:.1%}; Gini of item counts {real.gini:.2f}",
            f"  repeat purchases: {real.repeat_share:.1%} of interactions",
            f"  similar adjacent pairs (>= {SIMILAR_LEVELS} matching category levels): "
            f"{real.similar_pairs:,} of {real.adjacent_pairs:,} ({real.similar_share:.1%})",
            f"  critiques: {real.critiques:,}; {real.critiques_per_interaction:.1%} per "
            f"interaction, {real.critiques_per_similar_pair:.1%} per similar pair"
            + (
                f"; {real.critiques_off_rule:,} on pairs that are not similar"
                if real.critiques_off_rule
                else ""
            ),
        ]
        if self.config.endswith("_no_critique"):  # same narratives as its category's config
            return out
        for kind, words in self.narrative_words.items():
            if not len(words):
                out.append(f"  {kind:<28} none")
                continue
            shapes = real.shapes[kind]
            out.append(
                f"  {kind:<28} {len(words):>8,} texts, {words.mean():6.1f} words on average "
                f"(median {np.median(words):.0f}); {shapes.distinct:,} sentence shapes in "
                f"{min(SHAPE_SAMPLE, shapes.sentences):,} sentences, top 10 shapes "
                f"{shapes.top10_share:.0%} of all"
            )
        return out


def configs_in_folder(folder: str | os.PathLike) -> list[str]:
    """The split configs built in `folder` (catalog configs and absent configs are skipped)."""
    data = os.path.join(folder, "data")
    if not os.path.isdir(data):
        raise FileNotFoundError(
            f"{folder} has no data/ folder: build it with `regen dataset build`"
        )
    return [name for name in CONFIG_NAMES if os.path.isdir(os.path.join(data, name))]


def _longest_rows(table: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """Per user, the row that sees most of their sequence, and its sequence length."""
    lengths = pc.add(pc.list_value_length(table.column("history")), 1).to_numpy(
        zero_copy_only=False
    )
    user_ids = np.asarray(table.column("user_id").to_pylist(), dtype=object)
    order = np.lexsort((-lengths, user_ids))
    first = np.ones(len(order), dtype=bool)
    first[1:] = user_ids[order][1:] != user_ids[order][:-1]
    keep = order[first]
    return table.take(pa.array(keep)), lengths[keep]


def _sequences(full: pa.Table) -> tuple[np.ndarray, pa.Array, pa.Array, pa.Array]:
    """Every interaction of every user, in order: (user index, item id, categories, critique)."""
    history = full.column("history").combine_chunks()
    target = full.column("target").combine_chunks()
    flat = pc.list_flatten(history)
    parents = pc.list_parent_indices(history).to_numpy(zero_copy_only=False)
    users = np.concatenate([parents, np.arange(len(full))])
    # The target's critique is the row's top-level `critique` (split rows leave target's null).
    fields = {
        name: pa.concat_arrays([flat.field(name), target.field(name)])
        for name in ("item_id", "categories")
    }
    critique = pa.concat_arrays(
        [flat.field("critique"), full.column("critique").combine_chunks().cast(pa.string())]
    )
    # Stable order by user, keeping each user's history before their target.
    order = np.argsort(users, kind="stable")
    take = pa.array(order)
    return (
        users[order],
        fields["item_id"].take(take),
        fields["categories"].take(take),
        critique.take(take),
    )


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0: all equal; towards 1: one takes all)."""
    values = np.sort(np.asarray(counts, dtype=np.float64))
    if not len(values) or values.sum() == 0:
        return 0.0
    ranks = np.arange(1, len(values) + 1)
    return float(
        (2 * (ranks * values).sum()) / (len(values) * values.sum())
        - (len(values) + 1) / len(values)
    )


def realism(full: pa.Table, narratives: pa.StructArray | None) -> Realism:
    users, item_ids, categories, critique = _sequences(full)
    codes = pc.dictionary_encode(item_ids).indices.to_numpy(zero_copy_only=False)
    counts = np.bincount(codes)
    ranked = np.sort(counts)[::-1]
    total = int(counts.sum())

    def top_share(fraction: float) -> float:
        return float(ranked[: max(1, round(fraction * len(ranked)))].sum() / max(total, 1))

    pair_keys = users.astype(np.int64) * (len(counts) + 1) + codes
    repeats = total - len(np.unique(pair_keys))
    prefix = pc.binary_join(pc.list_slice(categories, 0, SIMILAR_LEVELS), "\x1f")
    prefix = pc.fill_null(pc.dictionary_encode(prefix).indices, -1).to_numpy(zero_copy_only=False)
    levels = pc.fill_null(pc.list_value_length(categories), 0).to_numpy(zero_copy_only=False)
    deep = levels >= SIMILAR_LEVELS
    adjacent = users[1:] == users[:-1]
    similar = adjacent & deep[1:] & deep[:-1] & (prefix[1:] == prefix[:-1])
    has_critique = critique.is_valid().to_numpy(zero_copy_only=False)
    shapes = {}
    if narratives is not None:
        for kind in NARRATIVE_KINDS:
            texts = narratives.field(kind).drop_null().to_pylist()
            shapes[kind] = ShapeStats.of(texts)
    return Realism(
        interactions=total,
        top1_share=top_share(0.01),
        top10_share=top_share(0.10),
        gini=gini(counts),
        repeat_share=repeats / max(total, 1),
        adjacent_pairs=int(adjacent.sum()),
        similar_pairs=int(similar.sum()),
        critiques=int(has_critique.sum()),
        critiques_off_rule=int((has_critique[1:] & adjacent & ~similar).sum()),
        shapes=shapes,
        item_counts=ranked,
    )


def config_stats(dataset_dict, config: str) -> ConfigStats:
    """Stats over every user once, from the row that sees most of their sequence."""
    tables = {
        split: dataset_dict[split].data.table for split in SPLIT_NAMES if split in dataset_dict
    }
    table = pa.concat_tables(tables.values())
    full, lengths = _longest_rows(table)
    history = full.column("history").combine_chunks()
    items = pc.unique(
        pa.chunked_array(
            [
                pc.list_flatten(history).field("item_id"),
                full.column("target").combine_chunks().field("item_id"),
            ]
        )
    )
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
        interactions_per_user=lengths,
        narrative_words=narrative_words,
        rows={split: t.num_rows for split, t in tables.items()},
        realism=realism(full, full.column("narratives").combine_chunks()),
    )


def describe_folder(folder: str | os.PathLike, configs: list[str], plot_path: str | None) -> str:
    """Load each config with `load_dataset` and describe it; save a plot if asked."""
    import datasets

    for config in configs:
        check_user_config(config)
    stats = [
        config_stats(datasets.load_dataset(os.fspath(folder), config), config) for config in configs
    ]
    if plot_path:
        report_path = os.path.join(folder, "build_report.json")
        synthetic = os.path.exists(report_path) and json.load(open(report_path)).get("synthetic")
        plot_stats(stats, plot_path, title="SYNTHETIC sample data" if synthetic else None)
    return "\n".join([CRITIQUE_RATIOS, *(line for s in stats for line in s.lines())])


def plot_stats(stats: list[ConfigStats], path: str, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    if title:
        fig.suptitle(title, color="tab:red", fontweight="bold")
    stats = [s for s in stats if not s.config.endswith("_no_critique")]
    for s in stats:
        bins = np.arange(1, max(s.interactions_per_user.max(), 2) + 2) - 0.5
        axes[0].hist(s.interactions_per_user, bins=bins, alpha=0.5, label=s.config)
    axes[0].set(title="Interactions per user", xlabel="interactions", ylabel="users")
    width = 0.8 / max(len(stats), 1)
    kinds = list(NARRATIVE_KINDS)
    for index, s in enumerate(stats):
        means = [s.narrative_words[k].mean() if len(s.narrative_words[k]) else 0 for k in kinds]
        axes[1].bar(np.arange(len(kinds)) + index * width, means, width, label=s.config)
    axes[1].set_xticks(np.arange(len(kinds)) + width * (len(stats) - 1) / 2)
    axes[1].set_xticklabels([k.replace("_", "\n") for k in kinds], fontsize=8)
    axes[1].set(title="Narrative length", ylabel="words (mean)")
    names = [s.config for s in stats]
    for offset, (label, values) in enumerate(
        (
            ("per interaction", [100 * s.realism.critiques_per_interaction for s in stats]),
            ("per similar pair", [100 * s.realism.critiques_per_similar_pair for s in stats]),
            ("repeat purchases", [100 * s.realism.repeat_share for s in stats]),
        )
    ):
        axes[2].bar(np.arange(len(names)) + offset * 0.27, values, 0.27, label=label)
    axes[2].set_xticks(np.arange(len(names)) + 0.27)
    axes[2].set_xticklabels(names)
    axes[2].set(title="Critiques and repeats", ylabel="%")
    for s in stats:
        counts = s.realism.item_counts
        axes[3].plot(
            100 * np.arange(1, len(counts) + 1) / len(counts),
            100 * np.cumsum(counts) / max(counts.sum(), 1),
            label=f"{s.config} (Gini {s.realism.gini:.2f})",
        )
    axes[3].set(
        title="Item concentration",
        xlabel="% of items, most bought first",
        ylabel="% of interactions",
    )
    for axis in axes:
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as partial:
        fig.savefig(partial, dpi=110, format=os.path.splitext(path)[1][1:] or "png")
    plt.close(fig)
