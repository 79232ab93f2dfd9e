"""Cut canonical user sequences into train / validation / test rows.

Leave-one-out (section 5.1.1 of the REGEN paper, the default): for a user with N interactions,
train sees the first N-2 (it predicts interaction N-2 from the N-3 before it), validation predicts
N-1 from the first N-2, and test predicts N from the first N-1. Every user appears in every split.

User-disjoint (section 5.1 of "Beyond Retrieval"): each user lands in exactly one split, chosen by
a stable hash of the user id, and predicts their last interaction from all the others.

Targets. Item narratives (purchase reason, explanation, endorsement) belong to one purchase: a row
gets those of its own target item, where the source has them (Google's release carries them for
the last purchase only). User narratives (summaries, profile) were written from the whole
sequence, last purchase included, so leave-one-out gives them to the test split only; under the
user-disjoint protocol the whole sequence of a user is held out together, so every split has them.
Auto-rater scores were given to the narratives of the whole sequence (the last purchase's
narratives, the user narratives, the sequence's critiques), so only rows whose target is the last
purchase carry them (leave-one-out: test; user-disjoint: every row); elsewhere they are null.
Inputs. `history` carries interactions strictly before the target, and no narrative at all. The
critique that steers towards the target is an input: it is the row's top-level `critique`, and the
`target` struct (the labels) keeps no critique of its own.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regen_dataset.schema import FEATURES, NARRATIVE_KINDS, SPLIT_NAMES, USER_NARRATIVES

PROTOCOLS = ("leave_one_out", "user_disjoint")
MIN_INTERACTIONS = {"leave_one_out": 4, "user_disjoint": 2}
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)  # user-disjoint: train, validation, test shares of users


@dataclass
class SplitReport:
    protocol: str
    users: int = 0
    too_short: int = 0  # users with fewer than MIN_INTERACTIONS[protocol] interactions
    rows: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {
            "protocol": self.protocol,
            "min_interactions": MIN_INTERACTIONS[self.protocol],
            "users": self.users,
            "too_short": self.too_short,
            "rows": dict(self.rows),
        }

    def summary(self) -> str:
        rows = ", ".join(f"{split} {self.rows[split]:,}" for split in SPLIT_NAMES)
        return (
            f"{self.protocol}: {self.users:,} users -> rows {rows}; "
            f"{self.too_short:,} users with fewer than {MIN_INTERACTIONS[self.protocol]} "
            "interactions left out"
        )

    def refuse_no_rows(self, category: str, paths: list, configs: Iterable[str] = ()) -> None:
        """A ValueError if no user made a row, or if a split of `configs` got no row.

        `datasets` cannot load an empty split (a parquet file without rows fails with
        "BatchSize must be greater than 0", a builder's split with "corresponds to no data"),
        so a build that would write one is refused, naming the configs and the split.
        """
        sources = ", ".join(map(str, paths))
        if not sum(self.rows.values()):
            raise ValueError(
                f"{category}: no user of {sources} makes a row "
                f"({self.summary()}): a folder of empty splits cannot be loaded"
            )
        configs = list(configs)
        empty = [split for split in SPLIT_NAMES if not self.rows[split]]
        if configs and empty:
            raise ValueError(
                f"{', '.join(configs)}: the {' and '.join(empty)} split"
                f"{'s are' if len(empty) > 1 else ' is'} empty ({self.summary()}), and "
                f"`datasets` cannot load an empty split: build from more users of {category} "
                f"than {sources} hold"
                + (
                    f" (the {self.protocol} protocol puts each user in one split only)"
                    if self.protocol == "user_disjoint"
                    else ""
                )
            )


def split_batch(
    sequences: pa.RecordBatch,
    protocol: str = "leave_one_out",
    *,
    report: SplitReport | None = None,
    seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> dict[str, pa.RecordBatch]:
    """Split rows (schema `FEATURES`, critiques kept) for one batch of sequences."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown split protocol {protocol!r}; expected one of {PROTOCOLS}")
    report = report if report is not None else SplitReport(protocol)
    lengths = pc.list_value_length(sequences.column("interactions")).to_numpy()
    long_enough = lengths >= MIN_INTERACTIONS[protocol]
    report.users += len(lengths)
    report.too_short += int((~long_enough).sum())

    if protocol == "leave_one_out":
        # How many interactions each split sees: N-2, N-1 and N.
        plan = {
            "train": (long_enough, lengths - 2, False),
            "validation": (long_enough, lengths - 1, False),
            "test": (long_enough, lengths, True),
        }
    else:
        assignment = _assign_users(sequences.column("user_id").to_pylist(), seed, fractions)
        plan = {
            split: (long_enough & (assignment == index), lengths, True)
            for index, split in enumerate(SPLIT_NAMES)
        }
    out = {}
    for split, (selected, seen, with_user_narratives) in plan.items():
        rows = np.flatnonzero(selected)
        out[split] = _cut(sequences, rows, seen[rows], with_user_narratives)
        report.rows[split] += len(rows)
    return out


def drop_critiques(rows: pa.RecordBatch) -> pa.RecordBatch:
    """The same rows with every critique (history, steering critique, target) set to null."""
    history = rows.column("history")
    history = pa.ListArray.from_arrays(
        history.offsets, _without_critique(history.values), mask=history.is_null()
    )
    columns = {name: rows.column(name) for name in rows.schema.names}
    columns["history"] = history
    columns["critique"] = pa.nulls(rows.num_rows, pa.string())
    columns["target"] = _without_critique(rows.column("target"))
    return pa.RecordBatch.from_arrays(list(columns.values()), schema=rows.schema)


def _without_critique(interactions: pa.StructArray) -> pa.StructArray:
    names = [f.name for f in interactions.type]
    children = [
        pa.nulls(len(interactions), pa.string()) if name == "critique" else interactions.field(name)
        for name in names
    ]
    return pa.StructArray.from_arrays(children, names=names)


def _assign_users(user_ids: list[str], seed: int, fractions) -> np.ndarray:
    """0, 1 or 2 (train, validation, test) per user, stable across runs and machines."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise ValueError(
            f"split fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    draws = np.array(
        [
            int.from_bytes(
                hashlib.blake2b(f"{seed}:{uid}".encode(), digest_size=8).digest(), "big"
            )  # "big" is 3.11's default; Python 3.10 needs it said
            / 2**64
            for uid in user_ids
        ]
    )
    return np.searchsorted(np.cumsum(fractions)[:-1], draws, side="right")


def _cut(
    sequences: pa.RecordBatch, rows: np.ndarray, seen: np.ndarray, with_user_narratives: bool
) -> pa.RecordBatch:
    """For each selected user, history = first seen-1 interactions, target = interaction seen."""
    interactions = sequences.column("interactions")
    starts = interactions.offsets.to_numpy()[rows]
    history_lengths = (seen - 1).astype(np.int64)
    history_offsets = np.concatenate(([0], np.cumsum(history_lengths))).astype(np.int32)
    # Gather indices: start_i, start_i + 1, ..., start_i + history_length_i - 1, for every user.
    gather = np.repeat(starts - history_offsets[:-1], history_lengths) + np.arange(
        history_offsets[-1]
    )
    target_index = pa.array(starts + seen - 1)
    values = interactions.values
    history = pa.ListArray.from_arrays(pa.array(history_offsets), values.take(pa.array(gather)))
    target = values.take(target_index)
    critique = target.field("critique")
    target = _without_critique(target)

    item_narratives = sequences.column("item_narratives").values.take(target_index)
    user_narratives = sequences.column("user_narratives").take(pa.array(rows))
    narratives = [
        item_narratives.field(kind)
        if kind not in USER_NARRATIVES
        else (
            user_narratives.field(kind)
            if with_user_narratives
            else pa.nulls(len(rows), pa.string())
        )
        for kind in NARRATIVE_KINDS
    ]
    rater = sequences.column("rater").take(pa.array(rows))
    if not with_user_narratives:  # the target is not the last purchase: nothing here was rated
        rater = _nulls_like(rater.type, len(rows))
    return pa.RecordBatch.from_arrays(
        [
            sequences.column("user_id").take(pa.array(rows)),
            history,
            critique,
            target,
            pa.StructArray.from_arrays(narratives, names=list(NARRATIVE_KINDS)),
            rater,
        ],
        schema=FEATURES.arrow_schema,
    )


def _nulls_like(struct_type: pa.StructType, length: int) -> pa.StructArray:
    """A struct array whose leaves are all null (the shape readers get for absent scores)."""
    children = [
        _nulls_like(f.type, length) if pa.types.is_struct(f.type) else pa.nulls(length, f.type)
        for f in struct_type
    ]
    return pa.StructArray.from_arrays(children, fields=list(struct_type))
