"""Read Google's REGEN release (JSONL, one user a line) into canonical user sequences.

The fast path hands blocks of lines to Arrow's C++ JSON parser with an explicit schema and turns
the result into `SEQUENCE_FEATURES` with vectorised compute; Python only looks at individual lines
when a block fails, to say exactly which file, line and field is wrong (or to skip and count it
with `skip_bad_lines=True`).

The release format is known only from evidence (see REGEN_RELEASE_FORMAT.md), so the reader is
tolerant: `review.timestamp` or `review.unix_time`; categories as a `" - "`-joined string; price
0.0 read as unknown; critiques and endorsements under their likely key names, with sentinel
placeholders read as null. `ReadReport` says which optional fields a file actually carried.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from regen_dataset.schema import (
    CRITIQUE_SENTINEL,  # noqa: F401  (re-exported until every user imports it from schema)
    ITEM_NARRATIVES,
    RATER_ATTRIBUTES,
    SEQUENCE_FEATURES,
    SIMILAR_LEVELS,  # noqa: F401
    USER_NARRATIVES,
)

_str, _num = pa.string(), pa.float64()

# Candidate key names, most likely first. The first non-null value wins.
CRITIQUE_KEYS = ("critique", "user_critique")
ENTRY_NARRATIVE_KEYS = {
    "purchase_reason": ("reason", "purchase_reason"),
    "purchase_reason_explanation": ("explanation", "purchase_reason_explanation"),
    "product_endorsement": ("endorsement", "product_endorsement"),
}
USER_NARRATIVE_KEYS = {
    "user_summary_brief": "brief_summary",
    "user_summary_long": "long_summary",
    "user_profile": "profile",
}
# Critique values that mean "no critique for this pair", compared after lower-casing and dropping
# everything but letters and digits ("<NO_CRITIQUE>", "[none]", "N/A", "" ...).
CRITIQUE_SENTINELS = frozenset(
    {"", "none", "nocritique", "nocritiques", "na", "null", "nan", "sentinel", "placeholder"}
)

_ENTRY_TEXT_KEYS = sorted({k for keys in ENTRY_NARRATIVE_KEYS.values() for k in keys})
PARSE_SCHEMA = pa.schema(
    [
        ("reviewer_id", _str),
        (
            "purchase_history",
            pa.list_(
                pa.struct(
                    [
                        (
                            "item",
                            pa.struct(
                                [
                                    ("asin", _str),
                                    ("title", _str),
                                    ("category", _str),
                                    ("description", _str),
                                    ("price", _num),
                                ]
                            ),
                        ),
                        (
                            "review",
                            pa.struct(
                                [
                                    ("summary", _str),
                                    ("rating", _num),
                                    ("text", _str),
                                    ("timestamp", _num),
                                    ("unix_time", _num),
                                ]
                            ),
                        ),
                        *[(key, _str) for key in CRITIQUE_KEYS],
                        *[(key, _str) for key in _ENTRY_TEXT_KEYS],
                    ]
                )
            ),
        ),
        ("last_purchase", pa.struct([(key, _str) for key in _ENTRY_TEXT_KEYS])),
        ("user", pa.struct([(key, _str) for key in USER_NARRATIVE_KEYS.values()])),
        (
            "metadata",
            pa.struct(
                [
                    (group, pa.struct([(attribute, _num) for attribute in attributes]))
                    for group, attributes in RATER_ATTRIBUTES.items()
                ]
            ),
        ),
    ]
)

# (path, description) of the fields a line must have; `[]` walks into every list element.
REQUIRED_FIELDS = (
    "reviewer_id",
    "purchase_history",
    "purchase_history[].item",
    "purchase_history[].item.asin",
    "purchase_history[].item.title",
    "purchase_history[].review",
    "purchase_history[].review.rating",
    "purchase_history[].review.timestamp|unix_time",
)


class ReleaseFormatError(ValueError):
    """A line of a release file that cannot be read; names the file, line and field."""

    def __init__(self, path: str, line: int, field: str, message: str):
        self.path, self.line, self.field, self.message = path, line, field, message
        super().__init__(f"{path}, line {line}, field {field}: {message}")

    def __reduce__(self):  # raised in worker processes, re-raised in the parent
        return type(self), (self.path, self.line, self.field, self.message)


@dataclass
class ReadReport:
    """What a read found: counts, optional fields present, lines skipped and why."""

    files: list[str] = field(default_factory=list)
    lines: int = 0
    users: int = 0
    interactions: int = 0
    skipped_lines: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    found: Counter = field(default_factory=Counter)  # optional field -> non-null values
    unknown_fields: Counter = field(default_factory=Counter)  # in the first line of each block
    unknown_price: int = 0
    critique_sentinels: int = 0

    def add_skip(self, error: ReleaseFormatError) -> None:
        self.skipped_lines += 1
        if len(self.skipped_examples) < 20:
            self.skipped_examples.append(str(error))

    def to_dict(self) -> dict:
        out = {key: getattr(self, key) for key in self.__dataclass_fields__}
        out["found"] = dict(sorted(self.found.items()))
        out["unknown_fields"] = dict(sorted(self.unknown_fields.items()))
        return out

    def summary(self) -> str:
        lines = [
            f"read {self.users:,} users, {self.interactions:,} interactions "
            f"from {self.lines:,} lines of {', '.join(self.files)}",
        ]
        if self.skipped_lines:
            lines.append(
                f"skipped {self.skipped_lines:,} bad lines, e.g. {self.skipped_examples[0]}"
            )
        critiques = self.found.get("critique", 0)
        lines.append(
            f"critiques: {critiques:,} "
            f"({critiques / max(self.interactions, 1):.1%} of interactions); "
            f"{self.critique_sentinels:,} sentinel placeholders read as none"
        )
        present = [name for name, count in sorted(self.found.items()) if count]
        absent = [name for name, count in sorted(self.found.items()) if not count]
        lines.append("optional fields present: " + (", ".join(present) or "none"))
        if absent:
            lines.append("optional fields absent: " + ", ".join(absent))
        lines.append(f"prices unknown (0.0 or missing): {self.unknown_price:,}")
        if self.unknown_fields:
            lines.append(
                "fields not in the known format: " + ", ".join(sorted(self.unknown_fields))
            )
        return "\n".join(lines)


def read_release(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    skip_bad_lines: bool = False,
    report: ReadReport | None = None,
    extra_critique_sentinels: Iterable[str] = (),
    block_bytes: int = 16 << 20,
) -> Iterator[pa.RecordBatch]:
    """Stream release JSONL files (optionally gzipped) as record batches of canonical sequences."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    report = report if report is not None else ReadReport()
    sentinels = CRITIQUE_SENTINELS | {_sentinel_key(s) for s in extra_critique_sentinels}
    for path in map(os.fspath, paths):
        report.files.append(path)
        for offset, block in _line_blocks(path, block_bytes):
            table = _parse_block(path, offset, block, skip_bad_lines, report)
            if table.num_rows:
                yield _to_sequences(table, report, sentinels)


def iter_users(path: str | os.PathLike, **kwargs) -> Iterator[dict]:
    """Canonical users as Python dicts (`SEQUENCE_FEATURES`), one at a time."""
    for batch in read_release(path, **kwargs):
        yield from batch.to_pylist()


# ---------------------------------------------------------------------------------------------
# Reading blocks of whole lines


def _open(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _lines_before(path: str, offset: int) -> int:
    """Lines before a byte offset of the (decompressed) file; only errors need this."""
    count = 0
    with _open(path) as handle:
        while offset > 0:
            chunk = handle.read(min(offset, 64 << 20))
            if not chunk:
                break
            count += chunk.count(b"\n")
            offset -= len(chunk)
    return count


def _line_blocks(path: str, block_bytes: int) -> Iterator[tuple[int, pa.Buffer]]:
    """(byte offset, data) blocks of whole lines, each read with a single copy."""
    if path.endswith(".gz"):
        yield from _stream_blocks(path, block_bytes)
        return
    with open(path, "rb") as handle:
        end = os.fstat(handle.fileno()).st_size
        position = 0
        while position < end:
            handle.seek(position)
            data = handle.read(min(block_bytes, end - position))
            cut = data.rfind(b"\n") + 1
            if position + len(data) >= end:  # the last block: everything left
                cut = len(data)
            elif cut == 0:  # a line longer than a block
                data += handle.readline()
                cut = len(data)
            yield position, pa.py_buffer(memoryview(data)[:cut])
            position += cut


def _stream_blocks(path: str, block_bytes: int) -> Iterator[tuple[int, pa.Buffer]]:
    offset, carry = 0, b""
    with _open(path) as handle:
        while chunk := handle.read(block_bytes):
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            yield offset, pa.py_buffer(data[:cut])
            offset += cut
            carry = data[cut:]
    if carry.strip():
        yield offset, pa.py_buffer(carry)


def _row_line_numbers(first_line: int, block: bytes) -> np.ndarray:
    """Line number of each non-blank line of a block (Arrow skips blank lines)."""
    raw = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(raw == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    blank = lengths == 0
    maybe_blank = np.flatnonzero((lengths > 0) & (lengths <= 8))
    for index in maybe_blank:  # whitespace-only lines; rare
        blank[index] = not block[starts[index] : ends[index]].strip()
    return first_line + np.flatnonzero(~blank)


def _parse_block(
    path: str, offset: int, block: pa.Buffer, skip_bad_lines: bool, report: ReadReport
) -> pa.Table:
    _note_unknown_fields(block, report)
    try:
        table = _arrow_parse(block)
        bad_rows = _rows_missing_required(table)
    except pa.ArrowInvalid:
        table, bad_rows = None, None
    if table is not None and not len(bad_rows):
        report.lines += table.num_rows
        return table
    # Something is wrong in this block: find each bad line with Python and say where it is.
    block = block.to_pybytes()
    first_line = _lines_before(path, offset) + 1
    line_numbers = _row_line_numbers(first_line, block)
    report.lines += len(line_numbers)
    lines = [line for line in block.split(b"\n") if line.strip()]
    candidates = range(len(lines)) if bad_rows is None else bad_rows
    errors = {}
    for row in candidates:
        error = diagnose_line(path, int(line_numbers[row]), lines[row])
        if error is not None:
            errors[row] = error
    if not errors:  # Arrow refused the block but every line checks out: report the block.
        raise ReleaseFormatError(
            path, first_line, "<block>", "Arrow could not parse lines starting here"
        )
    if not skip_bad_lines:
        raise errors[min(errors)]
    for row in sorted(errors):
        report.add_skip(errors[row])
    kept = b"\n".join(line for row, line in enumerate(lines) if row not in errors) + b"\n"
    if len(errors) == len(lines):
        return PARSE_SCHEMA.empty_table()
    return _arrow_parse(kept)


_PARSE_OPTIONS = pajson.ParseOptions(
    explicit_schema=PARSE_SCHEMA, unexpected_field_behavior="ignore"
)


def _arrow_parse(block: pa.Buffer | bytes) -> pa.Table:
    # Arrow parses sub-blocks in parallel; a line longer than a sub-block needs one big block.
    try:
        options = pajson.ReadOptions(use_threads=True, block_size=4 << 20)
        return pajson.read_json(pa.BufferReader(block), options, _PARSE_OPTIONS)
    except pa.ArrowInvalid:
        if len(block) <= 4 << 20:
            raise
        options = pajson.ReadOptions(use_threads=True, block_size=len(block) + 1)
        return pajson.read_json(pa.BufferReader(block), options, _PARSE_OPTIONS)


def _note_unknown_fields(block: pa.Buffer, report: ReadReport) -> None:
    """Record keys outside the known format, from the block's first line (a cheap sample)."""
    first = bytes(block[:4096])
    while b"\n" not in first and len(first) < len(block):
        first = bytes(block[: 2 * len(first)])
    try:
        sample = json.loads(first.split(b"\n", 1)[0])
    except ValueError:
        return
    for path in _unknown_paths(sample, PARSE_SCHEMA):
        report.unknown_fields[path] += 1


def _unknown_paths(value, schema_type, prefix: str = "") -> Iterator[str]:
    fields = schema_type if isinstance(schema_type, pa.Schema) else None
    if isinstance(schema_type, pa.StructType):
        fields = schema_type
    if fields is not None and isinstance(value, dict):
        known = {f.name: f.type for f in fields}
        for key, child in value.items():
            name = f"{prefix}.{key}" if prefix else key
            if key not in known:
                yield name
            else:
                yield from _unknown_paths(child, known[key], name)
    elif isinstance(schema_type, pa.ListType) and isinstance(value, list) and value:
        yield from _unknown_paths(value[-1], schema_type.value_type, prefix + "[]")


# ---------------------------------------------------------------------------------------------
# Validation: vectorised detection, Python diagnosis


def _rows_missing_required(table: pa.Table) -> np.ndarray:
    """Rows (0-based) that lack a required field; empty when the block is clean."""
    history = table.column("purchase_history").combine_chunks()
    bad = pc.or_(pc.is_null(table.column("reviewer_id").combine_chunks()), pc.is_null(history))
    bad = pc.or_(bad, pc.equal(pc.fill_null(pc.list_value_length(history), 0), 0))
    entries = pc.list_flatten(history)
    item, review = entries.field("item"), entries.field("review")
    entry_bad = pc.or_(pc.is_null(item), pc.is_null(review))
    for column in (item.field("asin"), item.field("title"), review.field("rating")):
        entry_bad = pc.or_(entry_bad, pc.is_null(column))
    no_time = pc.and_(pc.is_null(review.field("timestamp")), pc.is_null(review.field("unix_time")))
    entry_bad = pc.or_(entry_bad, no_time)
    bad_rows = set(np.flatnonzero(bad.to_numpy(zero_copy_only=False)).tolist())
    if pc.any(entry_bad).as_py():
        parents = pc.list_parent_indices(history).to_numpy()
        bad_rows.update(np.unique(parents[entry_bad.to_numpy(zero_copy_only=False)]).tolist())
    return np.array(sorted(bad_rows), dtype=np.int64)


def diagnose_line(path: str, line_number: int, line: bytes) -> ReleaseFormatError | None:
    """The first problem of one release line, or None if it is well formed."""
    try:
        value = json.loads(line)
    except ValueError as error:
        return ReleaseFormatError(path, line_number, "<json>", f"malformed JSON ({error})")
    problem = _type_problem(value, PARSE_SCHEMA, "")
    if problem is None:
        problem = _required_problem(value)
    return None if problem is None else ReleaseFormatError(path, line_number, *problem)


def _type_problem(value, schema_type, path: str) -> tuple[str, str] | None:
    if value is None:
        return None
    where = path or "<line>"
    if isinstance(schema_type, (pa.Schema, pa.StructType)):
        if not isinstance(value, dict):
            return where, f"expected an object, got {type(value).__name__}"
        for child in schema_type:
            if child.name in value:
                name = f"{path}.{child.name}" if path else child.name
                problem = _type_problem(value[child.name], child.type, name)
                if problem:
                    return problem
        return None
    if isinstance(schema_type, pa.ListType):
        if not isinstance(value, list):
            return where, f"expected a list, got {type(value).__name__}"
        for index, element in enumerate(value):
            problem = _type_problem(element, schema_type.value_type, f"{path}[{index}]")
            if problem:
                return problem
        return None
    if pa.types.is_string(schema_type) and not isinstance(value, str):
        return where, f"expected a string, got {type(value).__name__} {value!r:.40}"
    if pa.types.is_floating(schema_type) and (
        isinstance(value, bool) or not isinstance(value, (int, float))
    ):
        return where, f"expected a number, got {type(value).__name__} {value!r:.40}"
    return None


def _required_problem(value: dict) -> tuple[str, str] | None:
    for path in REQUIRED_FIELDS:
        for where, present in _lookup(value, path.split("."), ""):
            if not present:
                return where, "required field is missing or null"
    history = value.get("purchase_history")
    if not history:
        return "purchase_history", "a user needs at least one purchase"
    return None


def _lookup(value, keys: list[str], prefix: str) -> Iterator[tuple[str, bool]]:
    """(path, present) for each place a dotted path with `[]` and `a|b` alternatives names."""
    key, rest = keys[0], keys[1:]
    walk_list = key.endswith("[]")
    key = key.removesuffix("[]")
    alternatives = key.split("|")
    name = f"{prefix}.{key}" if prefix else key
    found = next(
        (value[k] for k in alternatives if isinstance(value, dict) and value.get(k) is not None),
        None,
    )
    if found is None:
        yield name, False
        return
    if not rest:
        yield name, True
        return
    if walk_list:
        for index, element in enumerate(found):
            yield from _lookup(element, rest, f"{name}[{index}]")
    else:
        yield from _lookup(found, rest, name)


# ---------------------------------------------------------------------------------------------
# Conversion to canonical sequences


def _sentinel_key(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def is_critique(text: str | None) -> bool:
    """Whether a release critique field holds a real critique rather than a placeholder."""
    if not text:
        return False
    return len(text) > _SENTINEL_MAX_CHARS or _sentinel_key(text) not in CRITIQUE_SENTINELS


def _coalesce(struct: pa.StructArray, keys: Iterable[str]) -> pa.Array:
    return pc.coalesce(*[struct.field(key) for key in keys])


def _integral(values: pa.Array, pa_type: pa.DataType) -> pa.Array:
    return pc.cast(pc.round(values), pa_type)


def _categories(category: pa.Array) -> pa.Array:
    """`"Root - Sub - Leaf"` -> `["Root", "Sub", "Leaf"]`; empty -> null. Keeps "T-Shirts" whole."""
    trimmed = pc.utf8_trim_whitespace(category)
    trimmed = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, _str), trimmed)
    levels = pc.split_pattern(trimmed, " - ")
    return pa.ListArray.from_arrays(
        levels.offsets, pc.utf8_trim_whitespace(levels.values), mask=levels.is_null()
    )


_SENTINEL_MAX_CHARS = 32  # a critique this short might be a placeholder; longer ones never are


def _critiques(critique: pa.Array, sentinels: frozenset, report: ReadReport) -> pa.Array:
    """Critiques with sentinel placeholders replaced by null (only short strings are checked)."""
    short = np.flatnonzero(
        pc.fill_null(pc.less_equal(pc.utf8_length(critique), _SENTINEL_MAX_CHARS), False).to_numpy(
            zero_copy_only=False
        )
    )
    if not len(short):
        return critique
    keys = pc.utf8_lower(
        pc.replace_substring_regex(critique.take(pa.array(short)), r"[^\p{L}\p{N}]", "")
    )
    hits = short[
        pc.is_in(keys, value_set=pa.array(sorted(sentinels))).to_numpy(zero_copy_only=False)
    ]
    report.critique_sentinels += len(hits)
    mask = np.zeros(len(critique), dtype=bool)
    mask[hits] = True
    return pc.if_else(pa.array(mask), pa.scalar(None, _str), critique)


def _to_sequences(table: pa.Table, report: ReadReport, sentinels: frozenset) -> pa.RecordBatch:
    history = table.column("purchase_history").combine_chunks()
    lengths = pc.list_value_length(history).to_numpy()
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    entries = pc.list_flatten(history)
    item, review = entries.field("item"), entries.field("review")
    n_users, n_entries = table.num_rows, len(entries)
    report.users += n_users
    report.interactions += n_entries

    price = item.field("price")
    unknown_price = pc.fill_null(pc.equal(price, 0.0), True)
    report.unknown_price += pc.sum(unknown_price).as_py() or 0
    timestamp = pc.coalesce(review.field("timestamp"), review.field("unix_time"))
    report.found["review.timestamp"] += n_entries - review.field("timestamp").null_count
    report.found["review.unix_time"] += n_entries - review.field("unix_time").null_count

    critique = _critiques(_coalesce(entries, CRITIQUE_KEYS), sentinels, report)
    report.found["critique"] += n_entries - critique.null_count

    interactions = pa.StructArray.from_arrays(
        [
            item.field("asin"),
            item.field("title"),
            _categories(item.field("category")),
            item.field("description"),
            pc.if_else(unknown_price, pa.scalar(None, _num), price),
            _integral(review.field("rating"), pa.int32()),
            review.field("summary"),
            review.field("text"),
            _integral(timestamp, pa.int64()),
            critique,
        ],
        names=list(SEQUENCE_FEATURES["interactions"].feature),
    )

    # Narratives about single purchases: per-entry keys, and `last_purchase` for the last one.
    last_purchase = table.column("last_purchase").combine_chunks()
    owner = np.full(n_entries, -1, dtype=np.int64)
    owner[offsets[1:] - 1] = np.arange(n_users)
    owner_index = pa.array(owner, mask=owner < 0)
    item_narratives = []
    for kind in ITEM_NARRATIVES:
        keys = ENTRY_NARRATIVE_KEYS[kind]
        from_entry = _coalesce(entries, keys)
        from_last = _coalesce(last_purchase, keys).take(owner_index)
        report.found[f"purchase_history[].{keys[0]}"] += n_entries - from_entry.null_count
        report.found[f"last_purchase.{keys[0]}"] += (
            n_users - _coalesce(last_purchase, keys).null_count
        )
        item_narratives.append(pc.coalesce(from_last, from_entry))

    user = table.column("user").combine_chunks()
    user_narratives = []
    for kind in USER_NARRATIVES:
        values = user.field(USER_NARRATIVE_KEYS[kind])
        report.found[f"user.{USER_NARRATIVE_KEYS[kind]}"] += n_users - values.null_count
        user_narratives.append(values)

    metadata = table.column("metadata").combine_chunks()
    rater_groups = []
    for group, attributes in RATER_ATTRIBUTES.items():
        scores = metadata.field(group)
        columns = [_integral(scores.field(name), pa.int32()) for name in attributes]
        report.found[f"metadata.{group}"] += (
            n_users - pc.sum(pc.is_null(pc.coalesce(*columns))).as_py()
        )
        rater_groups.append(pa.StructArray.from_arrays(columns, names=list(attributes)))

    pa_offsets = pa.array(offsets)
    return pa.RecordBatch.from_arrays(
        [
            table.column("reviewer_id").combine_chunks(),
            pa.ListArray.from_arrays(pa_offsets, interactions),
            pa.ListArray.from_arrays(
                pa_offsets,
                pa.StructArray.from_arrays(item_narratives, names=list(ITEM_NARRATIVES)),
            ),
            pa.StructArray.from_arrays(user_narratives, names=list(USER_NARRATIVES)),
            pa.StructArray.from_arrays(rater_groups, names=list(RATER_ATTRIBUTES)),
        ],
        schema=SEQUENCE_FEATURES.arrow_schema,
    )
