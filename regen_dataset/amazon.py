"""Read raw Amazon Reviews 2018 files (reviews + metadata) into REGEN user sequences.

REGEN starts from CALRec-preprocessed Amazon Reviews 2018 (seed 002, section 3.2.1): reviews are
grouped by user and sorted by time (ties keep the file's line order); interactions whose item has
no titled metadata are dropped, then consecutive duplicates (the same ASIN twice in a row); the last
`max_length` (50) interactions are kept and users with fewer than `min_length` (5) are dropped.
Every filter is counted in an `AmazonReport`: nothing is dropped without a number beside it.

The output is Google's release format (`reviewer_id`, `purchase_history[].item` and `.review`),
so `regen_dataset.release.read_release` reads it unchanged and the inpainting pipeline can start
from either source.

Memory stays bounded on Clothing-size inputs (32M review lines, 2.7M metadata lines), in three
passes over a temporary working folder that is removed afterwards, also on error:
1. Stream the reviews in blocks through Arrow's C++ JSON parser and append the fields needed to
   bucket files on disk (Arrow IPC), partitioned by ranges of a stable hash of the user id;
   collect the reviewed ASINs into a sorted index that numbers them.
2. Stream the metadata; append the cleaned title, category, description and price of reviewed
   items to a file, by item number (HTML tags stripped, entities unescaped; a price range or an
   unreadable price is written as 0.0, as the release does).
3. Load one bucket at a time, build its users' sequences with vectorised filters, read their items
   and yield them. Users come out ordered by (hash, id), whatever the number of buckets.
The working folder needs about two thirds of the reviews' uncompressed size.

A block that Arrow refuses, or that lacks a required field, is parsed again line by line in Python,
which names the file, line and field of each bad line (`AmazonFormatError`), or skips and counts
it with `skip_bad_lines=True`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import html
import json
import marshal
import math
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
from tqdm.auto import tqdm

MIN_LENGTH = 5
MAX_LENGTH = 50

_str = pa.string()
REVIEW_SCHEMA = pa.schema(
    [
        ("reviewerID", _str),
        ("asin", _str),
        ("overall", pa.float64()),
        ("unixReviewTime", pa.int64()),
        ("summary", _str),
        ("reviewText", _str),
    ]
)
META_SCHEMA = pa.schema(
    [
        ("asin", _str),
        ("title", _str),
        ("category", pa.list_(_str)),
        ("description", pa.list_(_str)),
        ("price", _str),
    ]
)
REQUIRED_REVIEW_FIELDS = ("reviewerID", "asin", "overall", "unixReviewTime")
REQUIRED_META_FIELDS = ("asin",)

# What pass 1 keeps of a review, one file per bucket of users.
BUCKET_SCHEMA = pa.schema(
    [
        ("hash", pa.uint32()),
        ("user", _str),
        ("asin", _str),
        ("rating", pa.int8()),
        ("time", pa.int64()),
        ("seq", pa.int64()),  # position among the file's review lines: breaks ties in time
        ("summary", _str),
        ("text", _str),
    ]
)
BUCKET_BYTES = 96 << 20  # aim for buckets of about this much (uncompressed) review data
MAX_BUCKETS = 512


class AmazonFormatError(ValueError):
    """A line of an Amazon Reviews file that cannot be read; names the file, line and field."""

    def __init__(self, path: str, line: int, field: str, message: str):
        self.path, self.line, self.field, self.message = path, line, field, message
        super().__init__(f"{path}, line {line}, field {field}: {message}")

    def __reduce__(self):
        return type(self), (self.path, self.line, self.field, self.message)


@dataclass
class AmazonReport:
    """Counts of what was read, kept and dropped, and why.

    Reviews: `review_lines` = `bad_review_lines` + `interactions_without_title`
    + `consecutive_duplicates` + `interactions_over_max` + `interactions_of_short_users`
    + `interactions_kept`.
    Metadata: `meta_lines` = `bad_meta_lines` + `meta_unreferenced` + `meta_without_title`
    + `meta_duplicates` + `items_with_title`.
    """

    reviews_file: str = ""
    meta_file: str = ""
    min_length: int = MIN_LENGTH
    max_length: int = MAX_LENGTH
    buckets: int = 0
    # reviews
    review_lines: int = 0
    bad_review_lines: int = 0
    reviews_without_text: int = 0  # not dropped for it: written with text ""
    reviews_without_summary: int = 0  # not dropped for it: written with summary ""
    items_reviewed: int = 0  # distinct ASINs among the reviews
    # metadata
    meta_lines: int = 0
    bad_meta_lines: int = 0
    meta_unreferenced: int = 0  # items no review mentions: not stored
    meta_without_title: int = 0  # no title, or nothing left once HTML is stripped
    meta_duplicates: int = 0  # another line for an item already stored (the first one wins)
    items_with_title: int = 0
    price_ranges: int = 0  # of the items stored: "$10.00 - $20.00", written as 0.0 ...
    prices_unknown: int = 0  # ... and empty, missing or unreadable: 0.0, as the release does
    # sequences
    users_read: int = 0
    interactions_without_title: int = 0  # the item has no titled metadata
    consecutive_duplicates: int = 0  # the same item as the interaction before
    interactions_over_max: int = 0  # older than the last `max_length`
    users_too_short: int = 0  # fewer than `min_length` interactions left
    interactions_of_short_users: int = 0
    users_kept: int = 0
    interactions_kept: int = 0
    items_kept: int = 0
    bad_line_examples: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def add_bad_line(self, error: AmazonFormatError, kind: str) -> None:
        if kind == "reviews":
            self.bad_review_lines += 1
        else:
            self.bad_meta_lines += 1
        if len(self.bad_line_examples) < 20:
            self.bad_line_examples.append(str(error))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        dropped = (
            f"dropped {self.interactions_without_title:,} interactions whose item has no title, "
            f"{self.consecutive_duplicates:,} consecutive duplicates, "
            f"{self.interactions_over_max:,} beyond the last {self.max_length} of a user, and "
            f"{self.users_too_short:,} users with fewer than {self.min_length} interactions "
            f"({self.interactions_of_short_users:,} interactions)"
        )
        lines = [
            f"kept {self.users_kept:,} users, {self.interactions_kept:,} interactions, "
            f"{self.items_kept:,} items, from {self.review_lines:,} review lines of "
            f"{self.users_read:,} users ({self.reviews_file})",
            dropped,
            f"metadata: {self.items_with_title:,} titled items of {self.items_reviewed:,} "
            f"reviewed, from {self.meta_lines:,} lines ({self.meta_file}); "
            f"{self.meta_unreferenced:,} lines of items never reviewed, "
            f"{self.meta_without_title:,} without a title, {self.meta_duplicates:,} duplicates",
            f"prices written as 0.0: {self.price_ranges:,} ranges, "
            f"{self.prices_unknown:,} missing or unreadable",
        ]
        if self.reviews_without_text or self.reviews_without_summary:
            lines.append(
                f"reviews kept without text: {self.reviews_without_text:,}, "
                f"without summary: {self.reviews_without_summary:,}"
            )
        if self.bad_review_lines or self.bad_meta_lines:
            lines.append(
                f"skipped {self.bad_review_lines:,} bad review lines and "
                f"{self.bad_meta_lines:,} bad metadata lines, e.g. {self.bad_line_examples[0]}"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Public entry points


def read_amazon(
    reviews: str | os.PathLike,
    meta: str | os.PathLike,
    *,
    min_length: int = MIN_LENGTH,
    max_length: int = MAX_LENGTH,
    skip_bad_lines: bool = False,
    workdir: str | os.PathLike | None = None,
    report: AmazonReport | None = None,
    buckets: int | None = None,
    progress: bool = False,
    block_bytes: int = 32 << 20,
) -> Iterator[dict]:
    """Yield release-format users built from `<Category>.json(.gz)` and `meta_<Category>.json(.gz)`.

    `workdir` is where the temporary working folder goes (default: the system's temporary
    folder); it needs about 2/3 of the reviews' uncompressed size. `buckets` (default: from the
    reviews' size) sets how many users are held in memory at once; the output does not depend on
    it. The report is filled in as the passes go; it is complete once the iterator is exhausted.
    """
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= min_length <= max_length, got {min_length}, {max_length}")
    reviews, meta = os.fspath(reviews), os.fspath(meta)
    for path in (reviews, meta):
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
    report = report if report is not None else AmazonReport()
    report.reviews_file, report.meta_file = reviews, meta
    report.min_length, report.max_length = min_length, max_length
    n_buckets = buckets if buckets is not None else _default_buckets(reviews)
    if n_buckets < 1:
        raise ValueError(f"buckets must be at least 1, got {n_buckets}")
    report.buckets = n_buckets
    return _read(reviews, meta, report, n_buckets, skip_bad_lines, workdir, progress, block_bytes)


def write_sequences(
    path: str | os.PathLike,
    users: Iterable[dict],
    *,
    progress: bool = True,
    total: int | None = None,
) -> int:
    """Write users as JSONL (gzipped if `path` ends in .gz) atomically; returns how many."""
    path = os.fspath(path)
    partial = f"{path}.partial"
    count = 0
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(partial, "wt", encoding="utf-8") as out:
            bar = tqdm(users, total=total, disable=not progress, desc="writing", unit=" users")
            for user in bar:
                # ASCII with \u escapes, like json.dumps' default: its encoder is the fastest.
                out.write(json.dumps(user) + "\n")
                count += 1
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
        raise
    return count


def build_sequences(
    reviews: str | os.PathLike,
    meta: str | os.PathLike,
    out: str | os.PathLike,
    *,
    min_length: int = MIN_LENGTH,
    max_length: int = MAX_LENGTH,
    skip_bad_lines: bool = False,
    workdir: str | os.PathLike | None = None,
    buckets: int | None = None,
    progress: bool = True,
) -> AmazonReport:
    """Read raw Amazon files and write release-format JSONL to `out`; returns the report.

    Arguments are those of `read_amazon`; the working folder goes next to `out` unless `workdir`
    says otherwise.
    """
    report = AmazonReport()
    if workdir is None:
        workdir = os.path.dirname(os.path.abspath(os.fspath(out)))
    users = read_amazon(
        reviews,
        meta,
        min_length=min_length,
        max_length=max_length,
        skip_bad_lines=skip_bad_lines,
        workdir=workdir,
        report=report,
        buckets=buckets,
        progress=progress,
    )
    started = time.perf_counter()
    write_sequences(out, users, progress=False)
    report.seconds["total"] = round(time.perf_counter() - started, 2)
    return report


def user_hash(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """32-bit FNV-1a of each id's UTF-8 bytes: the stable hash that buckets and orders users."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    ids = ids.cast(_str)
    out = np.full(len(ids), 2166136261, dtype=np.uint32)
    if not len(ids):
        return out
    _, offsets_buffer, data_buffer = ids.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32, len(ids) + 1, ids.offset * 4)
    starts = offsets[:-1].astype(np.int64)
    lengths = offsets[1:] - offsets[:-1]
    if data_buffer is None or not lengths.max():
        return out
    data = np.frombuffer(data_buffer, np.uint8)
    prime = np.uint32(16777619)
    shortest = int(lengths.min())
    for position in range(shortest):  # every id has this byte
        out = (out ^ data[starts + position]) * prime
    for position in range(shortest, int(lengths.max())):
        rows = np.flatnonzero(lengths > position)
        out[rows] = (out[rows] ^ data[starts[rows] + position]) * prime
    return out


def parse_price(price: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Metadata price strings -> (float64 with 0.0 when unknown or a range, kind).

    Kinds: 0 a single price ("$12.99", "$1,299.00"), 1 a range ("$10.00 - $20.00"),
    2 unknown (missing, empty or anything else).
    """
    text = pc.utf8_trim_whitespace(price)
    number = r"\$?\s*[0-9][0-9,]*(\.[0-9]+)?"
    single = pc.fill_null(pc.match_substring_regex(text, f"^{number}$"), False)
    ranges = pc.fill_null(pc.match_substring_regex(text, rf"^{number}\s*-\s*{number}$"), False)
    digits = pc.replace_substring_regex(text, r"[$,\s]", "")
    value = pc.cast(pc.if_else(single, digits, "0"), pa.float64())
    kind = np.full(len(price), 2, dtype=np.int8)
    kind[ranges.to_numpy(zero_copy_only=False)] = 1
    kind[single.to_numpy(zero_copy_only=False)] = 0
    return value, kind


def clean_html(values: pa.Array) -> pa.Array:
    """Strip HTML tags, unescape entities, collapse whitespace (nulls stay null).

    Tags go first, so that an escaped "&lt;assorted&gt;" stays as text; a "<" not followed by a
    letter or "/" is not a tag ("1 < 2").
    """
    values = pc.replace_substring_regex(values, r"<!--.*?-->|</?[A-Za-z][^<>]*>", " ")
    has_entity = pc.fill_null(pc.match_substring(values, "&"), False)
    if pc.any(has_entity).as_py():
        unescaped = [html.unescape(text) for text in values.filter(has_entity).to_pylist()]
        values = pc.replace_with_mask(values, has_entity, pa.array(unescaped, _str))
    # Runs of whitespace and single non-space whitespace become one space; matching only those
    # (not every single space) keeps RE2 fast.
    values = pc.replace_substring_regex(values, r"[\s\v\x{a0}]{2,}|[\t\n\r\f\v\x{a0}]", " ")
    return pc.utf8_trim_whitespace(values)


# ---------------------------------------------------------------------------------------------
# The three passes


def _default_buckets(reviews: str) -> int:
    size = os.path.getsize(reviews) * (4 if reviews.endswith(".gz") else 1)  # uncompressed
    return max(1, min(MAX_BUCKETS, math.ceil(0.7 * size / BUCKET_BYTES)))


def _read(
    reviews: str,
    meta: str,
    report: AmazonReport,
    n_buckets: int,
    skip_bad_lines: bool,
    workdir: str | os.PathLike | None,
    progress: bool,
    block_bytes: int,
) -> Iterator[dict]:
    if workdir is not None:
        os.makedirs(workdir, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="regen-amazon-", dir=workdir)
    store = None
    try:
        started = time.perf_counter()
        index = _bucket_reviews(
            reviews, folder, n_buckets, skip_bad_lines, report, progress, block_bytes
        )
        report.items_reviewed = len(index)
        report.seconds["reviews"] = round(time.perf_counter() - started, 2)

        started = time.perf_counter()
        store = _ItemStore(os.path.join(folder, "items.marshal"), len(index))
        _store_items(meta, store, index, skip_bad_lines, report, progress, block_bytes)
        titled = store.has(np.arange(len(index)))
        report.seconds["metadata"] = round(time.perf_counter() - started, 2)

        started = time.perf_counter()
        kept = np.zeros(len(index), dtype=bool)  # items of kept interactions
        bar = tqdm(total=n_buckets, disable=not progress, desc="users", unit=" buckets")
        with bar:
            for bucket in range(n_buckets):
                path = os.path.join(folder, f"bucket_{bucket:04d}.arrow")
                with pa.ipc.open_stream(path) as stream:
                    table = stream.read_all().combine_chunks()
                os.remove(path)
                yield from _bucket_users(table, index, titled, store, kept, report)
                bar.update()
                bar.set_postfix(users=f"{report.users_kept:,}", refresh=False)
        report.items_kept = int(kept.sum())
        report.seconds["sequences"] = round(time.perf_counter() - started, 2)
    finally:
        if store is not None:
            store.close()
        shutil.rmtree(folder, ignore_errors=True)


def _bucket_reviews(
    path: str,
    folder: str,
    n_buckets: int,
    skip_bad_lines: bool,
    report: AmazonReport,
    progress: bool,
    block_bytes: int,
) -> _ItemIndex:
    """Pass 1: reviews -> bucket files by user hash; returns the index of reviewed ASINs."""
    reviewed = _UniqueStrings()
    with contextlib.ExitStack() as stack:
        writers = [
            stack.enter_context(
                pa.ipc.new_stream(
                    os.path.join(folder, f"bucket_{bucket:04d}.arrow"),
                    BUCKET_SCHEMA,
                )
            )
            for bucket in range(n_buckets)
        ]
        for table in _parsed_blocks(path, _REVIEWS, skip_bad_lines, report, progress, block_bytes):
            if not table.num_rows:
                continue
            seq_start = report.review_lines - report.bad_review_lines - table.num_rows
            rows = _bucket_rows(table, seq_start, report)
            reviewed.add(pc.unique(rows.column("asin")))
            bucket = (rows.column("hash").to_numpy().astype(np.uint64) * n_buckets) >> 32
            order = np.argsort(bucket, kind="stable")
            counts = np.bincount(bucket[order].astype(np.int64), minlength=n_buckets)
            rows = rows.take(order)
            start = 0
            for index in np.flatnonzero(counts):
                writers[index].write_table(rows.slice(start, int(counts[index])))
                start += int(counts[index])
    return _ItemIndex(reviewed.array())


def _bucket_rows(table: pa.Table, seq_start: int, report: AmazonReport) -> pa.Table:
    users = table.column("reviewerID").combine_chunks()
    summary, text = table.column("summary"), table.column("reviewText")
    report.reviews_without_summary += summary.null_count
    report.reviews_without_text += text.null_count
    return pa.table(
        [
            pa.array(user_hash(users)),
            users,
            table.column("asin"),
            pc.cast(pc.round(table.column("overall")), pa.int8()),
            table.column("unixReviewTime"),
            pa.array(np.arange(seq_start, seq_start + table.num_rows, dtype=np.int64)),
            summary,  # nulls are written as "" in pass 3
            text,
        ],
        schema=BUCKET_SCHEMA,
    )


def _store_items(
    path: str,
    store: _ItemStore,
    index: _ItemIndex,
    skip_bad_lines: bool,
    report: AmazonReport,
    progress: bool,
    block_bytes: int,
) -> None:
    """Pass 2: the cleaned fields of reviewed, titled items -> `store`, by item id."""
    for table in _parsed_blocks(path, _META, skip_bad_lines, report, progress, block_bytes):
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
            _category_string(table.column("category").combine_chunks()),
            _description_string(table.column("description").combine_chunks()),
            price,
        ]
        store.add(ids, zip(*(column.to_pylist() for column in columns), strict=True))
        report.items_with_title += len(ids)
    store.flush()


def _description_string(paragraphs: pa.ListArray) -> pa.Array:
    return pc.fill_null(clean_html(pc.binary_join(paragraphs, " ")), "")


def _category_string(levels: pa.ListArray) -> pa.Array:
    """Clean each level (each distinct one once), drop empty ones, join with " - "."""
    encoded = pc.dictionary_encode(levels.flatten())
    flat = clean_html(encoded.dictionary).take(encoded.indices)
    parents = pc.list_parent_indices(levels).to_numpy()
    keep = pc.fill_null(pc.greater(pc.utf8_length(flat), 0), False)
    counts = np.bincount(parents[keep.to_numpy(zero_copy_only=False)], minlength=len(levels))
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), flat.filter(keep)), " - ")
    return pc.fill_null(joined, "")


def _bucket_users(
    table: pa.Table,
    index: _ItemIndex,
    titled: np.ndarray,
    store: _ItemStore,
    kept: np.ndarray,
    report: AmazonReport,
) -> Iterator[dict]:
    """Pass 3 for one bucket: filter, sort, deduplicate, cap and yield its users."""
    if not table.num_rows:
        return
    report.users_read += pc.count_distinct(table.column("user")).as_py()
    ids, _ = index.ids(table.column("asin"))  # every reviewed ASIN is in the index
    rows = np.flatnonzero(titled[ids])
    report.interactions_without_title += table.num_rows - len(rows)
    keys = table.select(["hash", "user", "time", "seq"]).take(rows)
    sort_keys = [(name, "ascending") for name in ("hash", "user", "time", "seq")]
    rows = rows[pc.sort_indices(keys, sort_keys=sort_keys).to_numpy()]

    users = table.column("user").take(rows)
    new_user = np.ones(len(rows), dtype=bool)
    if len(rows) > 1:
        new_user[1:] = pc.not_equal(users[1:], users[:-1]).to_numpy(zero_copy_only=False)
    duplicate = ~new_user
    duplicate[1:] &= ids[rows[1:]] == ids[rows[:-1]]
    report.consecutive_duplicates += int(duplicate.sum())
    rows, new_user = rows[~duplicate], new_user[~duplicate]

    starts = np.flatnonzero(new_user)
    lengths = np.diff(np.append(starts, len(rows)))
    short = lengths < report.min_length
    report.users_too_short += int(short.sum())
    report.interactions_of_short_users += int(lengths[short].sum())
    over = np.maximum(lengths - report.max_length, 0)
    report.interactions_over_max += int(over[~short].sum())
    group = np.cumsum(new_user) - 1
    position = np.arange(len(rows)) - starts[group]
    keep = ~short[group] & (position >= over[group])
    first = (position == over[group])[keep]  # each kept user's first kept row
    rows = rows[keep]
    if not len(rows):
        return

    item_ids = ids[rows]
    kept[item_ids] = True
    items = store.get(np.unique(item_ids))
    item_ids = item_ids.tolist()
    bounds = np.append(np.flatnonzero(first), len(rows)).tolist()
    table = table.take(rows)
    user_ids = table.column("user").to_pylist()
    ratings = table.column("rating").to_pylist()
    times = table.column("time").to_pylist()
    summaries = table.column("summary").to_pylist()
    texts = table.column("text").to_pylist()
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        history = [
            {
                "item": dict(items[item_ids[i]]),
                "review": {
                    "summary": summaries[i] or "",
                    "rating": ratings[i],
                    "text": texts[i] or "",
                    "unix_time": times[i],
                },
            }
            for i in range(start, end)
        ]
        report.users_kept += 1
        report.interactions_kept += end - start
        yield {"reviewer_id": user_ids[start], "purchase_history": history}


class _ItemStore:
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


class _ItemIndex:
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


class _UniqueStrings:
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


# ---------------------------------------------------------------------------------------------
# Parsing blocks of lines: Arrow first, Python where Arrow refuses or a required field is absent


class _BadField(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(field, message)
        self.field, self.message = field, message


@dataclass(frozen=True)
class _Format:
    kind: str  # "reviews" or "metadata"
    schema: pa.Schema
    row: Callable[[dict], tuple]  # a parsed line -> values in schema order; raises _BadField
    valid: Callable[[pa.Table], bool]  # Arrow's table of a block holds no bad line


def _required_string(value: dict, key: str) -> str:
    text = value.get(key)
    if text is None:
        raise _BadField(key, "required field is missing or null")
    if not isinstance(text, str):
        raise _BadField(key, f"expected a string, got {type(text).__name__} {text!r:.40}")
    if not text:
        raise _BadField(key, "required field is empty")
    return text


def _optional_string(value: dict, key: str) -> str | None:
    text = value.get(key)
    return text if isinstance(text, str) else None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _review_row(value: dict) -> tuple:
    user, asin = _required_string(value, "reviewerID"), _required_string(value, "asin")
    rating = value.get("overall")
    if rating is None:
        raise _BadField("overall", "required field is missing or null")
    if not _is_number(rating):
        raise _BadField("overall", f"expected a number, got {type(rating).__name__} {rating!r:.40}")
    if not 1 <= rating <= 5:
        raise _BadField("overall", f"expected a rating from 1 to 5, got {rating!r}")
    unix_time = value.get("unixReviewTime")
    if unix_time is None:
        raise _BadField("unixReviewTime", "required field is missing or null")
    if not _is_number(unix_time) or not -(2**62) < unix_time < 2**62 or unix_time % 1:
        raise _BadField(
            "unixReviewTime",
            f"expected whole unix seconds, got {type(unix_time).__name__} {unix_time!r:.40}",
        )
    summary = _optional_string(value, "summary")
    text = _optional_string(value, "reviewText")
    return user, asin, float(rating), int(unix_time), summary, text


def _string_list(value) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for text in value if isinstance(text, str)]
    return None


def _meta_row(value: dict) -> tuple:
    asin = _required_string(value, "asin")
    price = value.get("price")
    if _is_number(price):
        price = str(price)
    return (
        asin,
        _optional_string(value, "title"),
        _string_list(value.get("category")),
        _string_list(value.get("description")),
        price if isinstance(price, str) else None,
    )


def _reviews_valid(table: pa.Table) -> bool:
    if any(table.column(name).null_count for name in REQUIRED_REVIEW_FIELDS):
        return False
    if not table.num_rows:
        return True
    for name in ("reviewerID", "asin"):
        if pc.min(pc.binary_length(table.column(name))).as_py() == 0:
            return False
    extremes = pc.min_max(table.column("overall"))
    return 1 <= extremes["min"].as_py() and extremes["max"].as_py() <= 5


def _meta_valid(table: pa.Table) -> bool:
    if any(table.column(name).null_count for name in REQUIRED_META_FIELDS):
        return False
    return not table.num_rows or pc.min(pc.binary_length(table.column("asin"))).as_py() > 0


_REVIEWS = _Format("reviews", REVIEW_SCHEMA, _review_row, _reviews_valid)
_META = _Format("metadata", META_SCHEMA, _meta_row, _meta_valid)


def _parsed_blocks(
    path: str,
    form: _Format,
    skip_bad_lines: bool,
    report: AmazonReport,
    progress: bool,
    block_bytes: int,
) -> Iterator[pa.Table]:
    """Tables of the file's blocks with `form.schema`; counts lines into the report."""
    options = pajson.ParseOptions(explicit_schema=form.schema, unexpected_field_behavior="ignore")
    counter = _LineCounter(path)
    bar = tqdm(
        total=os.path.getsize(path),
        disable=not progress,
        desc=form.kind,
        unit="B",
        unit_scale=True,
    )
    with bar, contextlib.closing(counter):
        for offset, data, position in _prefetch(_line_blocks(path, block_bytes)):
            try:
                table = _arrow_parse(data, options)
                if not form.valid(table):
                    table = None
            except pa.ArrowInvalid:
                table = None
            if table is None:
                first_line = counter.lines_before(offset) + 1
                table = _python_parse(path, first_line, data, form, skip_bad_lines, report)
            else:
                _add_lines(report, form, table.num_rows)
            bar.update(position - bar.n)
            yield table


def _add_lines(report: AmazonReport, form: _Format, count: int) -> None:
    if form.kind == "reviews":
        report.review_lines += count
    else:
        report.meta_lines += count


def _arrow_parse(data: memoryview, options: pajson.ParseOptions) -> pa.Table:
    # Arrow parses sub-blocks in parallel; a line longer than a sub-block needs one big block.
    block_size = 1 << 20
    try:
        read_options = pajson.ReadOptions(use_threads=True, block_size=block_size)
        return pajson.read_json(pa.BufferReader(pa.py_buffer(data)), read_options, options)
    except pa.ArrowInvalid:
        if len(data) <= block_size:
            raise
        read_options = pajson.ReadOptions(use_threads=True, block_size=len(data) + 1)
        return pajson.read_json(pa.BufferReader(pa.py_buffer(data)), read_options, options)


def _python_parse(
    path: str,
    first_line: int,
    data: memoryview,
    form: _Format,
    skip_bad_lines: bool,
    report: AmazonReport,
) -> pa.Table:
    """Parse a block line by line: each bad line raises, or is skipped and counted."""
    rows = []
    for index, line in enumerate(bytes(data).split(b"\n")):
        if not line.strip():
            continue
        _add_lines(report, form, 1)
        try:
            try:
                value = json.loads(line)
            except ValueError as error:
                raise _BadField("<json>", f"malformed JSON ({error})") from None
            if not isinstance(value, dict):
                raise _BadField("<line>", f"expected an object, got {type(value).__name__}")
            rows.append(form.row(value))
        except _BadField as bad:
            error = AmazonFormatError(path, first_line + index, bad.field, bad.message)
            if not skip_bad_lines:
                raise error from None
            report.add_bad_line(error, form.kind)
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in form.schema]
    return pa.table(
        [pa.array(column, type=f.type) for column, f in zip(columns, form.schema, strict=True)],
        schema=form.schema,
    )


def _open_raw(path: str):
    """(the file on disk, its uncompressed stream); Arrow inflates without holding the GIL."""
    raw = pa.OSFile(path)
    if not path.endswith(".gz"):
        return raw, raw
    return raw, pa.CompressedInputStream(raw, "gzip")


def _line_blocks(path: str, block_bytes: int) -> Iterator[tuple[int, memoryview, int]]:
    """(offset in the uncompressed data, block of whole lines, position in the file on disk)."""
    raw, stream = _open_raw(path)
    with raw, stream:
        offset, carry = 0, b""
        while chunk := _read_or_say_where(stream, block_bytes, path):
            data = carry + chunk if carry else chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # a line longer than a block
                carry = data
                continue
            yield offset, memoryview(data)[:cut], raw.tell()
            offset += cut
            carry = data[cut:]
        if carry.strip():
            yield offset, memoryview(carry), raw.tell()


def _read_or_say_where(stream, size: int, path: str) -> bytes:
    try:
        return stream.read(size)
    except OSError as error:  # e.g. a truncated .gz: say which file
        raise OSError(f"{path}: {error}") from error


class _LineCounter:
    """Lines before a byte offset, counted forward only: errors need it, the fast path never."""

    def __init__(self, path: str):
        self.path = path
        self.handle = None
        self.offset = self.lines = 0

    def lines_before(self, offset: int) -> int:
        if self.handle is None or offset < self.offset:
            self.close()
            self.raw, self.handle = _open_raw(self.path)
            self.offset = self.lines = 0
        while self.offset < offset:
            chunk = self.handle.read(min(offset - self.offset, 16 << 20))
            if not chunk:
                break
            self.lines += chunk.count(b"\n")
            self.offset += len(chunk)
        return self.lines

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.raw.close()
            self.handle = None


def _prefetch(items: Iterator, depth: int = 1) -> Iterator:
    """Iterate `items` from a background thread, `depth` ahead: reading overlaps parsing."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            with contextlib.closing(items):
                for item in items:
                    if not put(item):
                        return
            put(done)
        except BaseException as error:  # handed to the consumer
            put(_Failure(error))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


@dataclass
class _Failure:
    error: BaseException
