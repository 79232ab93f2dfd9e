"""What the models' Python entry points (`rank`, `write`, the hybrid's call) accept as rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping


def check_row_collection(rows) -> None:
    """Rows are a split (`datasets.Dataset`) or a list of row dicts. A dict is refused with what
    to pass instead: a slice such as `split[:3]` is a dict of columns, and a single row would be
    read key by key; so is an iterator, which the models would read to its end in a first pass
    and then find empty."""
    if isinstance(rows, str):
        raise ValueError("rows: expected a list of row dicts or a dataset split, got a string")
    if isinstance(rows, Mapping):
        if rows and all(isinstance(value, list) for value in rows.values()):
            raise ValueError(
                "rows: got a dict of columns (a slice such as split[:3]); pass "
                "split.select(range(3)) or a list of row dicts"
            )
        raise ValueError("rows: got a single row dict; pass a list of rows ([row])")
    if isinstance(rows, Iterator):  # a generator, say: the rows are read more than once
        raise ValueError(
            "rows: got an iterator, which can be read once; pass a list (list(rows)) or a "
            "dataset split"
        )
