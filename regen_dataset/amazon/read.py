"""The Amazon reader's entry points: three passes over a working folder, then release-format users.

See the package docstring (`regen_dataset.amazon`) for what is kept and dropped, and why.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from regen_dataset.amazon.buckets import (
    bucket_reviews,
    bucket_users,
    default_buckets,
    working_folder,
)
from regen_dataset.amazon.items import ItemStore, store_items
from regen_dataset.amazon.report import MAX_LENGTH, MIN_LENGTH, AmazonReport
from regen_dataset.files import atomic_open, remove_dead_partials


def read_amazon(
    reviews: str | os.PathLike,
    meta: str | os.PathLike,
    *,
    min_length: int = MIN_LENGTH,
    max_length: int = MAX_LENGTH,
    max_users: int | None = None,
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
    it. `max_users` keeps only the first users (in output order); the others are read and
    counted all the same. The report is filled in as the passes go; it is complete once the
    iterator is exhausted.
    """
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= min_length <= max_length, got {min_length}, {max_length}")
    if max_users is not None and max_users < 1:
        raise ValueError(f"max_users must be at least 1, got {max_users}")
    reviews, meta = os.fspath(reviews), os.fspath(meta)
    for path, what in ((reviews, "reviews"), (meta, "metadata")):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such {what} file")
    report = report if report is not None else AmazonReport()
    report.reviews_file, report.meta_file = reviews, meta
    report.min_length, report.max_length = min_length, max_length
    report.max_users = max_users
    n_buckets = buckets if buckets is not None else default_buckets(reviews)
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
    count = 0
    with atomic_open(path) as out:
        bar = tqdm(users, total=total, disable=not progress, desc="writing", unit=" users")
        for user in bar:
            # ASCII with \u escapes, like json.dumps' default: its encoder is the fastest.
            out.write(json.dumps(user) + "\n")
            count += 1
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
    says otherwise. The partial output of a killed earlier run is removed first.
    """
    report = AmazonReport()
    remove_dead_partials(out)
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
    folder = working_folder(workdir, report)
    store = None
    try:
        started = time.perf_counter()
        index = bucket_reviews(
            reviews, folder, n_buckets, skip_bad_lines, report, progress, block_bytes
        )
        report.items_reviewed = len(index)
        report.seconds["reviews"] = round(time.perf_counter() - started, 2)

        started = time.perf_counter()
        store = ItemStore(os.path.join(folder, "items.marshal"), len(index))
        store_items(meta, store, index, skip_bad_lines, report, progress, block_bytes)
        titled = store.has(np.arange(len(index)))
        report.seconds["metadata"] = round(time.perf_counter() - started, 2)

        started = time.perf_counter()
        kept = np.zeros(len(index), dtype=bool)  # items of kept users, counted as they go
        bar = tqdm(total=n_buckets, disable=not progress, desc="users", unit=" buckets")
        with bar:
            for bucket in range(n_buckets):
                path = os.path.join(folder, f"bucket_{bucket:04d}.arrow")
                with pa.ipc.open_stream(path) as stream:
                    table = stream.read_all().combine_chunks()
                os.remove(path)
                yield from bucket_users(table, index, titled, store, kept, report)
                bar.update()
                bar.set_postfix(users=f"{report.users_kept:,}", refresh=False)
        report.seconds["sequences"] = round(time.perf_counter() - started, 2)
    finally:
        if store is not None:
            store.close()
        shutil.rmtree(folder, ignore_errors=True)
