"""Reviews bucketed on disk by user: pass 1 writes the buckets, pass 3 turns each into users.

Pass 1 (`bucket_reviews`) appends the fields needed later to Arrow IPC files, partitioned by
ranges of a stable hash of the user id (`user_hash`), and collects the reviewed ASINs. Pass 3
(`bucket_users`) loads one bucket at a time and builds its users' sequences with vectorised
filters. The buckets live in a working folder named after the reader's process id
(`regen-amazon-buckets-<pid>-*`), so that a later run can tell the folder of a killed reader
from one in use, and remove it (`remove_stale_folders`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regen_dataset.amazon.items import ItemIndex, ItemStore, UniqueStrings
from regen_dataset.amazon.lines import REVIEW_LINES, parsed_tables
from regen_dataset.amazon.report import AmazonReport
from regen_dataset.files import is_gzip, process_alive

_str = pa.string()
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

FOLDER_PREFIX = "regen-amazon-buckets-"
_FOLDER = re.compile(rf"^{re.escape(FOLDER_PREFIX)}(\d+)-")


def working_folder(workdir: str | os.PathLike | None, report: AmazonReport) -> str:
    """A new working folder in `workdir` (default: the system's temporary folder), after
    removing the ones that killed readers left there."""
    parent = os.fspath(workdir) if workdir is not None else tempfile.gettempdir()
    os.makedirs(parent, exist_ok=True)
    report.stale_folders_removed += remove_stale_folders(parent)
    return tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-", dir=parent)


def remove_stale_folders(parent: str) -> list[str]:
    """Remove the working folders in `parent` whose reader process is gone; returns them."""
    removed = []
    with os.scandir(parent) as entries:
        for entry in entries:
            match = _FOLDER.match(entry.name)
            if match and entry.is_dir(follow_symlinks=False):
                if not process_alive(int(match.group(1))):
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed.append(entry.path)
    return sorted(removed)


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


def default_buckets(reviews: str) -> int:
    size = os.path.getsize(reviews) * (4 if is_gzip(reviews) else 1)  # uncompressed
    return max(1, min(MAX_BUCKETS, math.ceil(0.7 * size / BUCKET_BYTES)))


def bucket_reviews(
    path: str,
    folder: str,
    n_buckets: int,
    skip_bad_lines: bool,
    report: AmazonReport,
    progress: bool,
    block_bytes: int,
) -> ItemIndex:
    """Pass 1: reviews -> bucket files by user hash; returns the index of reviewed ASINs."""
    reviewed = UniqueStrings()
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
        tables = parsed_tables(path, REVIEW_LINES, skip_bad_lines, report, progress, block_bytes)
        for table in tables:
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
    return ItemIndex(reviewed.array())


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


def bucket_users(
    table: pa.Table,
    index: ItemIndex,
    titled: np.ndarray,
    store: ItemStore,
    kept: np.ndarray,
    report: AmazonReport,
) -> Iterator[dict]:
    """Pass 3 for one bucket: filter, sort, deduplicate, cap and yield its users (no more than
    `report.max_users` kept over all buckets)."""
    if not table.num_rows:
        return
    users_read = pc.count_distinct(table.column("user")).as_py()
    report.users_read += users_read
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
    report.users_without_titled_items += users_read - int(new_user.sum())
    duplicate = ~new_user
    duplicate[1:] &= ids[rows[1:]] == ids[rows[:-1]]
    report.consecutive_duplicates += int(duplicate.sum())
    rows, new_user = rows[~duplicate], new_user[~duplicate]

    starts = np.flatnonzero(new_user)
    lengths = np.diff(np.append(starts, len(rows)))
    short = lengths < report.min_length
    report.users_too_short += int(short.sum())
    report.interactions_of_short_users += int(lengths[short].sum())
    surplus = _over_max_users(~short, report)
    report.users_over_max_users += int(surplus.sum())
    report.interactions_of_users_over_max_users += int(lengths[surplus].sum())
    taken = ~short & ~surplus
    over = np.maximum(lengths - report.max_length, 0)
    report.interactions_over_max += int(over[taken].sum())
    group = np.cumsum(new_user) - 1
    position = np.arange(len(rows)) - starts[group]
    keep = taken[group] & (position >= over[group])
    first = (position == over[group])[keep]  # each kept user's first kept row
    rows = rows[keep]
    if not len(rows):
        return

    item_array = ids[rows]
    items = store.get(np.unique(item_array))
    item_ids = item_array.tolist()
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
        # Counted before the yield: a caller that stops early still gets the right count.
        report.items_kept += _mark_kept(kept, item_array[start:end])
        yield {"reviewer_id": user_ids[start], "purchase_history": history}


def _over_max_users(long_enough: np.ndarray, report: AmazonReport) -> np.ndarray:
    """Which of a bucket's users come after the first `report.max_users` of all buckets."""
    surplus = np.zeros(len(long_enough), dtype=bool)
    if report.max_users is not None:
        room = max(report.max_users - report.users_kept, 0)
        surplus[np.flatnonzero(long_enough)[room:]] = True
    return surplus


def _mark_kept(kept: np.ndarray, item_ids: np.ndarray) -> int:
    """Mark a kept user's items as kept; returns how many of them were not marked before."""
    fresh = np.unique(item_ids[~kept[item_ids]])
    kept[fresh] = True
    return len(fresh)
