"""The item ids of a category's catalog in a built REGEN folder.

A folder built today carries the catalog as its own config (`office_items`, `clothing_items`);
an older folder does not, and there the catalog is every item that any split of the config
mentions, in a history or as a target.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.compute as pc

from regen_dataset.schema import ITEMS_SPLIT, config_category, items_config


def catalog_item_ids(dataset_dir: str | os.PathLike, config: str) -> list[str]:
    """Sorted item ids of the catalog of `config`'s category (`office_no_critique` -> office)."""
    import datasets

    dataset_dir = os.fspath(dataset_dir)
    items = items_config(config_category(config))
    if items in datasets.get_dataset_config_names(dataset_dir):
        table = datasets.load_dataset(dataset_dir, items, split=ITEMS_SPLIT).data.table
        ids = table.column("item_id")
    else:
        splits = datasets.load_dataset(dataset_dir, config)
        ids = pa.chunked_array(
            [chunk for split in splits.values() for chunk in split_item_ids(split).chunks]
        )
    return sorted(pc.unique(ids.drop_null()).to_pylist())


def split_item_ids(split) -> pa.ChunkedArray:
    """Item ids of every interaction of a split's rows (history and target), with repeats."""
    table = split.with_format("arrow")[:]
    history = pc.list_flatten(table.column("history"))
    history_ids = pc.struct_field(history, "item_id")
    target_ids = pc.struct_field(table.column("target"), "item_id")
    return pa.chunked_array(history_ids.chunks + target_ids.chunks, type=pa.string())
