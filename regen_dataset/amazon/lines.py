"""The two line formats of Amazon Reviews 2018, read through the shared block reader.

A review line (`<Category>.json`) needs `reviewerID`, `asin`, `overall` (a whole number of stars
from 1 to 5) and `unixReviewTime` (plausible unix seconds); a metadata line
(`meta_<Category>.json`) needs `asin`. Odd but readable metadata shapes (a description given as
one string, a price as a number) are read line by line in Python, which is why the rows of a block
that Arrow refuses are built from what the line check returns.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from regen_dataset import plausible
from regen_dataset.amazon.report import AmazonFormatError, AmazonReport
from regen_dataset.jsonl import BadField, LineFormat, read_blocks

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


def _object(value) -> dict:
    if not isinstance(value, dict):
        raise BadField("<line>", f"expected an object, got {type(value).__name__}")
    return value


def _required_string(value: dict, key: str) -> str:
    text = value.get(key)
    if text is None:
        raise BadField(key, "required field is missing or null")
    if not isinstance(text, str):
        raise BadField(key, f"expected a string, got {type(text).__name__} {text!r:.40}")
    if not text:
        raise BadField(key, "required field is empty")
    return text


def _required(value: dict, key: str):
    if value.get(key) is None:
        raise BadField(key, "required field is missing or null")
    return value[key]


def _optional_string(value: dict, key: str) -> str | None:
    text = value.get(key)
    return text if isinstance(text, str) else None


def _review_row(value) -> tuple:
    value = _object(value)
    user, asin = _required_string(value, "reviewerID"), _required_string(value, "asin")
    rating = _required(value, "overall")
    problem = plausible.rating_problem(rating)
    if problem:
        raise BadField("overall", problem)
    unix_time = _required(value, "unixReviewTime")
    problem = plausible.time_problem(unix_time)
    if problem:
        raise BadField("unixReviewTime", problem)
    summary = _optional_string(value, "summary")
    text = _optional_string(value, "reviewText")
    return user, asin, float(rating), round(unix_time), summary, text


def _string_list(value) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for text in value if isinstance(text, str)]
    return None


def _meta_row(value) -> tuple:
    value = _object(value)
    asin = _required_string(value, "asin")
    price = value.get("price")
    if isinstance(price, (int, float)) and not isinstance(price, bool):
        price = str(price)
    return (
        asin,
        _optional_string(value, "title"),
        _string_list(value.get("category")),
        _string_list(value.get("description")),
        price if isinstance(price, str) else None,
    )


def _empty_or_null(table: pa.Table, names: tuple[str, ...]) -> np.ndarray:
    bad = np.zeros(table.num_rows, dtype=bool)
    for name in names:
        column = table.column(name)
        if pa.types.is_string(column.type):
            column = pc.equal(pc.binary_length(column), 0)
        else:
            column = pc.is_null(column)
        bad |= pc.fill_null(column, True).to_numpy(zero_copy_only=False)
    return bad


def _bad_reviews(table: pa.Table) -> np.ndarray:
    bad = _empty_or_null(table, REQUIRED_REVIEW_FIELDS)
    bad |= plausible.bad_ratings(table.column("overall").combine_chunks())
    bad |= plausible.bad_times(table.column("unixReviewTime").combine_chunks())
    return np.flatnonzero(bad)


def _bad_meta(table: pa.Table) -> np.ndarray:
    return np.flatnonzero(_empty_or_null(table, REQUIRED_META_FIELDS))


REVIEW_LINES = LineFormat(
    name="reviews",
    schema=REVIEW_SCHEMA,
    error=AmazonFormatError,
    bad_rows=_bad_reviews,
    check=_review_row,
    rows_from_python=True,
)
META_LINES = LineFormat(
    name="metadata",
    schema=META_SCHEMA,
    error=AmazonFormatError,
    bad_rows=_bad_meta,
    check=_meta_row,
    rows_from_python=True,
)


def parsed_tables(
    path: str,
    form: LineFormat,
    skip_bad_lines: bool,
    report: AmazonReport,
    progress: bool,
    block_bytes: int,
) -> Iterator[pa.Table]:
    """Tables of the file's blocks with `form.schema`; counts its lines into the report."""
    bar = tqdm(
        total=os.path.getsize(path), disable=not progress, desc=form.name, unit="B", unit_scale=True
    )
    blocks = read_blocks(
        path,
        form,
        skip_bad_lines=skip_bad_lines,
        on_skip=partial(report.add_bad_line, kind=form.name),
        block_bytes=block_bytes,
    )
    with bar:
        for parsed in blocks:
            if form.name == "reviews":
                report.review_lines += parsed.lines
            else:
                report.meta_lines += parsed.lines
            bar.update(parsed.block.position - bar.n)
            yield parsed.table
