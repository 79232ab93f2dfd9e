"""The catalog of a category: every item that appears in any split row, once, in a fixed order.

`regen dataset build` and the `Regen` builder write it as the `office_items` / `clothing_items`
configs (`schema.ITEM_FEATURES`), so that models, the Space and users read the catalog once
instead of gathering it from histories. This module also tells a release file's category from its
category paths, so that a Clothing file given as Office is refused rather than built.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from regen_dataset.schema import CATEGORY_ROOTS, ITEM, ITEM_FEATURES


class CatalogCollector:
    """Collects the items of split rows (histories and targets); the first text seen wins."""

    def __init__(self):
        self._seen = pa.array([], pa.string())  # every id collected so far
        self._parts: list[pa.Table] = []

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, rows: pa.RecordBatch) -> None:
        """Add the items of a batch of split rows (schema `FEATURES`)."""
        for interactions in (rows.column("history").values, rows.column("target")):
            self._add_interactions(interactions)

    def _add_interactions(self, interactions: pa.StructArray) -> None:
        # All in Arrow: once the catalog is mostly known, a batch costs one hash lookup per row.
        ids = interactions.field("item_id")
        new = pc.invert(pc.is_in(ids, value_set=self._seen))
        if not pc.any(new).as_py():
            return
        rows = pa.table({"item_id": ids.filter(new), "row": pc.indices_nonzero(new)})
        first = rows.group_by("item_id", use_threads=False).aggregate([("row", "min")])
        first_rows = first.column("row_min").combine_chunks()
        taken = interactions.take(pc.take(first_rows, pc.sort_indices(first_rows)))
        self._seen = pa.concat_arrays([self._seen, first.column("item_id").combine_chunks()])
        self._parts.append(
            pa.Table.from_arrays([taken.field(name) for name in ITEM], names=list(ITEM))
        )

    def table(self) -> pa.Table:
        """The catalog sorted by item id (schema `ITEM_FEATURES`)."""
        schema = ITEM_FEATURES.arrow_schema
        if not self._parts:
            return schema.empty_table()
        table = pa.concat_tables(self._parts).cast(schema)
        return table.take(pc.sort_indices(table, sort_keys=[("item_id", "ascending")]))


def category_votes(sequences: pa.RecordBatch) -> Counter:
    """How many interactions of a batch of sequences have each known category root."""
    categories = pc.list_flatten(sequences.column("interactions")).field("categories")
    roots = pc.list_element(
        pc.filter(categories, pc.greater(pc.list_value_length(categories), 0)), 0
    )
    counts = Counter()
    for category, root in CATEGORY_ROOTS.items():
        counts[category] = pc.sum(pc.equal(roots, root)).as_py() or 0
    return counts


def check_category(sequences: pa.RecordBatch, category: str, path: str) -> None:
    """Refuse a file whose items belong to another category (when its paths name a root).

    Files whose category paths carry no known root (some exports strip it) cannot be checked and
    pass.
    """
    votes = category_votes(sequences)
    rooted = sum(votes.values())
    winner, count = votes.most_common(1)[0]
    if rooted and winner != category and count > rooted / 2:
        raise ValueError(
            f"{path}: its items are from {CATEGORY_ROOTS[winner]!r} ({count:,} of {rooted:,} "
            f"category paths in its first block), not {CATEGORY_ROOTS[category]!r}; "
            f"build it as {winner}={path}"
        )
