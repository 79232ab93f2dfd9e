"""The reviewed items: a sorted index that numbers their ASINs, and a file store of their fields.

Pass 2 of the Amazon reader (`store_items`) streams the metadata and keeps the cleaned fields of
the items that some review mentions and that have a title, the first titled line of each.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regen_dataset.amazon.lines import META_LINES, parsed_tables
from regen_dataset.amazon.report import AmazonReport
from regen_dataset.amazon.text import category_string, clean_html, description_string, parse_price

_str = pa.string()


def store_items(
    path: str,
    store: ItemStore,
    index: ItemIndex,
    skip_bad_lines: bool,
    report: AmazonReport,
    progress: bool,
    block_bytes: int,
) -> None:
    """Pass 2: the cleaned fields of reviewed, titled items -> `store`, by item id."""
    for table in parsed_tables(path, META_LINES, skip_bad_lines, report, progress, block_bytes):
        ids, reviewed = index.ids(table.column("asin"))
        table, ids = table.filter(reviewed), ids[reviewed]
        report.meta_unreferenced += len(reviewed) - len(ids)
        title = clean_html(table.column("title").combine_chunks())
        has_title = pc.fill_null(pc.greater(pc.utf8_length(title), 0), False).to_numpy(
            zero_copy_only=False
        )
        report.meta_without_title += len(ids) - int(has_title.sum())
        # The first titled line of an item wins; later ones are counted as duplicates.
        candidates = np.flatnonzero(has_title & ~store.has(ids))
        _, first = np.unique(ids[candidates], return_index=True)
        new = np.zeros(len(ids), dtype=bool)
        new[candidates[first]] = True
        report.meta_duplicates += int(has_title.sum() - new.sum())
        if not new.any():
            continue
        rows = pa.array(np.flatnonzero(new))
        table, title, ids = table.take(rows), title.take(rows), ids[new]
        price, kind = parse_price(table.column("price").combine_chunks())
        report.price_ranges += int((kind == 1).sum())
        report.prices_unknown += int((kind == 2).sum())
        columns = [
            table.column("asin"),
            title,
            category_string(table.column("category").combine_chunks()),
            description_string(table.column("description").combine_chunks()),
            price,
        ]
        store.add(ids, zip(*(column.to_pylist() for column in columns), strict=True))
        report.items_with_title += len(ids)
    store.flush()


class ItemStore:
    """Item fields by item id: marshal records appended to a file, their offsets in memory.

    Appending is as fast as writing; a lookup is one `pread`. 12 bytes of memory per item.
    """

    FIELDS = ("asin", "title", "category", "description", "price")

    def __init__(self, path: str, size: int):
        self.file = open(path, "w+b")
        self.offset = np.full(size, -1, dtype=np.int64)
        self.length = np.zeros(size, dtype=np.int32)
        self.end = 0

    def has(self, ids: np.ndarray) -> np.ndarray:
        return self.offset[ids] >= 0

    def add(self, ids: np.ndarray, rows: Iterable[tuple]) -> None:
        records = [marshal.dumps(row) for row in rows]
        lengths = np.fromiter(map(len, records), dtype=np.int64, count=len(records))
        self.offset[ids] = self.end + np.cumsum(lengths) - lengths
        self.length[ids] = lengths
        self.file.write(b"".join(records))
        self.end += int(lengths.sum())

    def flush(self) -> None:
        self.file.flush()

    def get(self, ids: np.ndarray) -> dict[int, dict]:
        """Items by id, read in file order."""
        ids = ids[np.argsort(self.offset[ids])]
        fd, fields = self.file.fileno(), self.FIELDS
        offsets, lengths = self.offset[ids].tolist(), self.length[ids].tolist()
        return {
            item_id: dict(zip(fields, marshal.loads(os.pread(fd, length, offset)), strict=True))
            for item_id, offset, length in zip(ids.tolist(), offsets, lengths, strict=True)
        }

    def close(self) -> None:
        self.file.close()


class ItemIndex:
    """The reviewed ASINs, sorted, as fixed-width bytes: ASIN -> dense id by binary search.

    Arrow's `is_in` would rebuild a hash table of millions of ASINs for every block; this index
    is built once, takes 10 bytes an ASIN, and turns ASINs into ids that index numpy flags.
    """

    def __init__(self, asins: pa.Array):
        self.width = max(1, pc.max(pc.binary_length(asins)).as_py() or 0)
        self.keys = np.sort(_fixed_width(asins, self.width)[0])

    def __len__(self) -> int:
        return len(self.keys)

    def ids(self, asins: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """(id of each ASIN, whether it is in the index); ids of absent ASINs are meaningless."""
        keys, too_long = _fixed_width(asins, self.width)
        if not len(self.keys):
            return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
        ids = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return ids, (self.keys[ids] == keys) & ~too_long


def _fixed_width(strings: pa.Array | pa.ChunkedArray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(strings as numpy bytes of `width`, which were longer and so cut); no copy when all fit."""
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    strings = strings.cast(_str)
    n = len(strings)
    _, offsets_buffer, data_buffer = strings.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32, n + 1, strings.offset * 4)
    data = (
        np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    )
    lengths = np.diff(offsets)
    if n and (lengths == width).all():
        return data[offsets[0] : offsets[-1]].view(f"S{width}"), np.zeros(n, dtype=bool)
    out = np.zeros((n, width), dtype=np.uint8)
    for position in range(width):
        rows = np.flatnonzero(lengths > position)
        out[rows, position] = data[offsets[rows] + position]
    return out.view(f"S{width}").reshape(n), lengths > width


class UniqueStrings:
    """A growing set of strings held as Arrow arrays, deduplicated now and then."""

    def __init__(self, compact_at: int = 4_000_000):
        self.parts: list[pa.Array] = []
        self.pending = 0
        self.compact_at = compact_at

    def add(self, values: pa.Array) -> None:
        self.parts.append(values)
        self.pending += len(values)
        if self.pending >= self.compact_at:
            self.parts = [self.array()]
            self.pending = 0
            self.compact_at = max(self.compact_at, 2 * len(self.parts[0]))

    def array(self) -> pa.Array:
        if not self.parts:
            return pa.array([], _str)
        return pc.unique(pa.concat_arrays([part.cast(_str) for part in self.parts]))

    def __len__(self) -> int:
        return len(self.array())
