"""Read Google's REGEN release (JSONL, one user a line) into canonical user sequences.

What is known of the release format comes from the paper ("REGEN: A Dataset and Benchmarks with
Natural Language Critiques and Narratives", https://arxiv.org/abs/2503.11924), the column list and
statistics of the published Clothing files, and one real Office user: Google published no
specification. A line is one user:

    {"reviewer_id": "A1...",
     "purchase_history": [                       # oldest first
        {"item": {"asin", "title", "category": "Root - Sub - Leaf", "description", "price"},
         "review": {"summary", "rating", "text", "timestamp" (or "unix_time"): unix seconds},
         "critique": "..."                        # about this item against the previous one
         ...per-purchase narratives, where present},
     ...],
     "last_purchase": {"reason", "explanation", "endorsement"},   # narratives of the last item
     "user": {"brief_summary", "long_summary", "profile"},
     "metadata": {group: {attribute: auto-rater score}},          # see schema.RATER_ATTRIBUTES
     "synthetic": true}                           # only on lines this project generates

Ratings and times may be written as floats (`4.0`, `1455494400.0`). Price 0.0 and a description
that is blank or "missing" are read as unknown (null); critiques that are placeholders
("<NO_CRITIQUE>", "none", ...) are read as null; all three are counted. The reader is tolerant
where the evidence is ambiguous (two names for the review time, critiques and narratives under
their likely key names) and strict about what would silently change a result: a rating must be a
whole number from 1 to 5, a time must be plausible unix seconds, a line holds one user and a user
has one line. A history keeps the file's
order, the order Google generated the critiques and narratives on (a critique is about a pair of
adjacent purchases, the last-purchase narratives and scores about the last line): a history whose
times disagree with it is counted, never re-sorted, since sorting would move held-out text into
inputs.
`ReadReport` says which optional fields a file actually carried and what was repaired or skipped.

The lines go through `regen_dataset.jsonl`: Arrow's C++ JSON parser with an explicit schema and
vectorised checks on the fast path; Python looks at single lines only in a block that fails, to
name the file, line and field of each bad line (or to skip and count it with
`skip_bad_lines=True`).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regen_dataset import plausible
from regen_dataset.jsonl import (
    BadField,
    LineError,
    LineFormat,
    NonFiniteNumber,
    loads,
    read_blocks,
)
from regen_dataset.schema import (
    ITEM_NARRATIVES,
    RATER_ATTRIBUTES,
    SEQUENCE_FEATURES,
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
TIME_KEYS = ("timestamp", "unix_time")
# What the release writes for an item without a description (about a quarter of the Clothing
# items): read as null, like price 0.0, and counted.
DESCRIPTION_PLACEHOLDER = "missing"
# Rater scores are small integers; anything that does not fit an int32 is not a score.
MAX_SCORE = 2**31 - 1

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
                                    *[(key, _num) for key in TIME_KEYS],
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
        ("synthetic", pa.bool_()),  # written by this project's generators, absent in Google's
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


class ReleaseFormatError(LineError):
    """A line of a release file that cannot be read; names the file, line and field."""


@dataclass
class ReadReport:
    """What a read found: counts, optional fields present, what was repaired or skipped and why."""

    files: list[str] = field(default_factory=list)
    lines: int = 0  # non-blank lines
    users: int = 0
    interactions: int = 0
    skipped_lines: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    duplicate_users: int = 0  # of the skipped lines: a user already read
    # Users whose purchase times disagree with the file's order; the file's order is kept.
    histories_out_of_time_order: int = 0
    # Purchases that repeat the one before them exactly (item, time and review): kept as the
    # file has them; where the last one repeats, the held-out item is also the newest input.
    repeated_purchases: int = 0
    histories_with_repeats: int = 0
    synthetic_users: int = 0  # lines marked `"synthetic": true`
    found: Counter = field(default_factory=Counter)  # optional field -> non-null values
    unknown_fields: Counter = field(default_factory=Counter)  # in the first line of each block
    unknown_price: int = 0
    # Descriptions that are exactly "missing" (the release's placeholder) or blank, read as null.
    missing_descriptions: int = 0
    critique_sentinels: int = 0
    # Where each user was read: a user repeated in a later file of the same read is caught too.
    user_lines: _UserLines = field(default_factory=lambda: _UserLines(), repr=False, compare=False)

    def add_skip(self, error: LineError) -> None:
        self.skipped_lines += 1
        if len(self.skipped_examples) < 20:
            self.skipped_examples.append(str(error))

    def add_duplicate(self, error: LineError) -> None:
        self.duplicate_users += 1
        self.add_skip(error)

    def to_dict(self) -> dict:
        out = {key: getattr(self, key) for key in self.__dataclass_fields__ if key != "user_lines"}
        out["found"] = dict(sorted(self.found.items()))
        out["unknown_fields"] = dict(sorted(self.unknown_fields.items()))
        return out

    def summary(self) -> str:
        lines = [
            f"read {self.users:,} users, {self.interactions:,} interactions "
            f"from {self.lines:,} lines of {', '.join(self.files)}",
        ]
        if self.synthetic_users:
            lines.append(f"synthetic users (marked by their generator): {self.synthetic_users:,}")
        if self.skipped_lines:
            repeats = (
                f" ({self.duplicate_users:,} of them users already read)"
                if self.duplicate_users
                else ""
            )
            lines.append(
                f"skipped {self.skipped_lines:,} bad lines{repeats}, "
                f"e.g. {self.skipped_examples[0]}"
            )
        if self.histories_out_of_time_order:
            lines.append(
                f"{self.histories_out_of_time_order:,} histories have times out of the file's "
                "order; the file's order is kept (the texts were generated on it)"
            )
        if self.repeated_purchases:
            lines.append(
                f"{self.repeated_purchases:,} purchases in {self.histories_with_repeats:,} "
                "histories repeat the purchase before them exactly (item, time and review); "
                "they are kept as the file has them"
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
        lines.append(
            f'descriptions read as null (blank, or the placeholder "missing"): '
            f"{self.missing_descriptions:,}"
        )
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
    """Stream release JSONL files (optionally gzipped) as record batches of canonical sequences.

    `extra_critique_sentinels` are more placeholder texts to read as "no critique" (compared
    like the built-in ones, ignoring case and everything but letters and digits), whatever their
    length: "No critique: items are not similar enough." is one.

    A user may appear once across all `paths`, and across all reads sharing `report`: a second
    line for the same `reviewer_id` is an error naming both lines (with `skip_bad_lines`, the
    later line is skipped and counted).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    report = report if report is not None else ReadReport()
    sentinels = _Sentinels(
        CRITIQUE_SENTINELS, frozenset(_sentinel_key(s) for s in extra_critique_sentinels)
    )
    users = report.user_lines
    for path in map(os.fspath, paths):
        report.files.append(path)
        blocks = read_blocks(
            path,
            RELEASE_LINES,
            skip_bad_lines=skip_bad_lines,
            on_skip=report.add_skip,
            block_bytes=block_bytes,
        )
        for parsed in blocks:
            _note_unknown_fields(parsed.block.data, report)
            report.lines += parsed.lines
            table = users.drop_repeats(
                path, parsed.table, parsed.line_numbers, skip_bad_lines, report.add_duplicate
            )
            if table.num_rows:
                yield _to_sequences(table, report, sentinels)


def iter_users(path: str | os.PathLike, **kwargs) -> Iterator[dict]:
    """Canonical users as Python dicts (`SEQUENCE_FEATURES`), one at a time."""
    for batch in read_release(path, **kwargs):
        yield from batch.to_pylist()


def read_source(
    path: str | os.PathLike,
    *,
    skip_bad_lines: bool = False,
    report: ReadReport,
    extra_critique_sentinels: Iterable[str] = (),
) -> Iterator[pa.RecordBatch]:
    """`read_release` of one file a build draws users from; a file without a user is an error.

    A folder built from no user has only empty parquet files, which `load_dataset` cannot read.
    """
    users, skipped, examples = report.users, report.skipped_lines, len(report.skipped_examples)
    yield from read_release(
        path,
        skip_bad_lines=skip_bad_lines,
        report=report,
        extra_critique_sentinels=extra_critique_sentinels,
    )
    if report.users > users:
        return
    skipped = report.skipped_lines - skipped
    if not skipped:
        raise ValueError(f"{os.fspath(path)}: no user to build from (it holds no non-blank line)")
    example = report.skipped_examples[examples:][:1]
    raise ValueError(
        f"{os.fspath(path)}: no user to build from: all {skipped:,} of its lines were bad and "
        "skipped (--skip-bad-lines)" + (f", e.g. {example[0]}" if example else "")
    )


class _UserLines:
    """Where each user of a read was found, to name both lines of a user given twice."""

    def __init__(self):
        self.paths: list[str] = []
        self.first: dict[str, int] = {}  # user id -> path index << 40 | line number

    def drop_repeats(
        self,
        path: str,
        table: pa.Table,
        numbers: np.ndarray,
        skip_bad_lines: bool,
        on_skip: Callable[[LineError], None],
    ) -> pa.Table:
        """The table without users already read; each repeat raises, or goes to `on_skip`."""
        if not self.paths or self.paths[-1] != path:
            self.paths.append(path)
        base = (len(self.paths) - 1) << 40
        ids = table.column("reviewer_id").to_pylist()
        first = self.first
        if len(set(ids)) == len(ids) and first.keys().isdisjoint(ids):  # the usual case
            first.update(zip(ids, (base + number for number in numbers.tolist()), strict=True))
            return table
        keep = np.ones(len(ids), dtype=bool)
        for row, (user_id, number) in enumerate(zip(ids, numbers.tolist(), strict=True)):
            seen = first.get(user_id)
            if seen is None:
                first[user_id] = base + number
                continue
            error = ReleaseFormatError(
                path,
                number,
                "reviewer_id",
                f"user {user_id!r} was already read at {self.paths[seen >> 40]}, line "
                f"{seen & ((1 << 40) - 1)}; each user has one line",
            )
            if not skip_bad_lines:
                raise error
            on_skip(error)
            keep[row] = False
        return table.filter(pa.array(keep))


def _note_unknown_fields(block: memoryview, report: ReadReport) -> None:
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


def _bad_rows(table: pa.Table) -> np.ndarray:
    """Rows (0-based) that lack a required field or hold an implausible value; empty if none."""
    history = table.column("purchase_history").combine_chunks()
    bad = pc.or_(pc.is_null(table.column("reviewer_id").combine_chunks()), pc.is_null(history))
    bad = pc.or_(bad, pc.equal(pc.fill_null(pc.list_value_length(history), 0), 0))
    metadata = table.column("metadata").combine_chunks()
    scores = [
        metadata.field(group).field(attribute)
        for group, attributes in RATER_ATTRIBUTES.items()
        for attribute in attributes
    ]
    if not plausible.plainly_within(pa.concat_arrays(scores), -MAX_SCORE, MAX_SCORE):
        for values in scores:
            bad = pc.or_(bad, _not_a_score(values))
    bad_rows = set(np.flatnonzero(pc.fill_null(bad, True).to_numpy(zero_copy_only=False)).tolist())

    entries = pc.list_flatten(history)
    item, review = entries.field("item"), entries.field("review")
    entry_bad = pc.or_(pc.is_null(item), pc.is_null(review))
    for column in (item.field("asin"), item.field("title"), review.field("rating")):
        entry_bad = pc.or_(entry_bad, pc.is_null(column))
    time = pc.coalesce(*[review.field(key) for key in TIME_KEYS])
    entry_bad = pc.or_(entry_bad, pc.is_null(time))
    entry_bad = pc.fill_null(entry_bad, True).to_numpy(zero_copy_only=False)
    entry_bad |= plausible.bad_ratings(review.field("rating")) | plausible.bad_times(time)
    price = item.field("price")
    if pc.all(pc.is_finite(price)).as_py() is False:
        entry_bad |= pc.invert(pc.fill_null(pc.is_finite(price), True)).to_numpy(
            zero_copy_only=False
        )
    if entry_bad.any():
        parents = pc.list_parent_indices(history).to_numpy()
        bad_rows.update(np.unique(parents[entry_bad]).tolist())
    return np.array(sorted(bad_rows), dtype=np.int64)


def _not_a_score(values: pa.Array) -> pa.Array:
    outside = pc.or_(pc.invert(pc.is_finite(values)), pc.greater(pc.abs(values), MAX_SCORE))
    return pc.fill_null(outside, False)


def _check_line(value) -> None:
    """Raise `BadField` for the first problem of one parsed release line."""
    if not isinstance(value, dict):
        raise BadField("<line>", f"expected an object, got {type(value).__name__}")
    problem = _type_problem(value, PARSE_SCHEMA, "") or _required_problem(value)
    problem = problem or _value_problem(value)
    if problem is not None:
        raise BadField(*problem)


def diagnose_line(path: str, line_number: int, line: bytes) -> ReleaseFormatError | None:
    """The first problem of one release line, or None if it is well formed."""
    try:
        _check_line(loads(line))
    except BadField as bad:
        return ReleaseFormatError(path, line_number, bad.field, bad.message)
    return None


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
    if pa.types.is_boolean(schema_type) and not isinstance(value, bool):
        return where, f"expected a boolean, got {type(value).__name__} {value!r:.40}"
    if pa.types.is_floating(schema_type):
        if isinstance(value, NonFiniteNumber):
            return where, f"expected a finite number, got {value!r:.40}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return where, f"expected a number, got {type(value).__name__} {value!r:.40}"
        if abs(value) > 1.8e308:  # an integer too large for a double
            return where, f"expected a finite number, got {value!r:.40}"
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


def _value_problem(value: dict) -> tuple[str, str] | None:
    """Ratings, times and scores that are numbers of the right type but cannot be right."""
    for index, entry in enumerate(value["purchase_history"]):
        review = entry["review"]
        problem = plausible.rating_problem(review["rating"])
        if problem:
            return f"purchase_history[{index}].review.rating", problem
        key = next(key for key in TIME_KEYS if review.get(key) is not None)
        problem = plausible.time_problem(review[key])
        if problem:
            return f"purchase_history[{index}].review.{key}", problem
    for group, scores in (value.get("metadata") or {}).items():
        for attribute, score in (scores or {}).items() if isinstance(scores, dict) else ():
            if attribute in RATER_ATTRIBUTES.get(group, ()) and score is not None:
                if abs(score) > MAX_SCORE:
                    return f"metadata.{group}.{attribute}", f"expected a score, got {score!r}"
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


RELEASE_LINES = LineFormat(
    name="release",
    schema=PARSE_SCHEMA,
    error=ReleaseFormatError,
    bad_rows=_bad_rows,
    check=_check_line,
    arrow_block_size=4 << 20,
)


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


_SENTINEL_MAX_CHARS = 32  # a critique this short might be a built-in placeholder


@dataclass(frozen=True)
class _Sentinels:
    """Placeholder keys: built-in ones (checked on short critiques only, so that a real
    critique is never compared) and those a caller named (checked on every critique)."""

    builtin: frozenset
    extra: frozenset = frozenset()


def _critiques(critique: pa.Array, sentinels: _Sentinels, report: ReadReport) -> pa.Array:
    """Critiques with sentinel placeholders replaced by null."""
    candidates = pc.is_valid(critique)
    if not sentinels.extra:  # built-in placeholders are short; longer texts are never compared
        candidates = pc.and_(
            candidates, pc.less_equal(pc.utf8_length(critique), _SENTINEL_MAX_CHARS)
        )
    short = np.flatnonzero(pc.fill_null(candidates, False).to_numpy(zero_copy_only=False))
    if not len(short):
        return critique
    texts = critique.take(pa.array(short))
    keys = pc.utf8_lower(pc.replace_substring_regex(texts, r"[^\p{L}\p{N}]", ""))
    builtin = pc.and_(
        pc.is_in(keys, value_set=pa.array(sorted(sentinels.builtin), _str)),
        pc.less_equal(pc.utf8_length(texts), _SENTINEL_MAX_CHARS),
    )
    named = pc.is_in(keys, value_set=pa.array(sorted(sentinels.extra), _str))
    hits = short[pc.or_(builtin, named).to_numpy(zero_copy_only=False)]
    report.critique_sentinels += len(hits)
    mask = np.zeros(len(critique), dtype=bool)
    mask[hits] = True
    return pc.if_else(pa.array(mask), pa.scalar(None, _str), critique)


def _count_out_of_time_order(times: np.ndarray, offsets: np.ndarray, report: ReadReport) -> None:
    """Count the histories whose times go backwards somewhere; their order is left as it is.

    Re-sorting would leak: a critique is about the pair (previous purchase, this one) and the
    last-purchase narratives and rater scores are about the file's last line, so moving purchases
    would put text written about a held-out target into an input.
    """
    earlier = times[1:] < times[:-1]
    earlier[offsets[1:-1] - 1] = False  # from one user's last purchase to the next one's first
    if not earlier.any():
        return
    owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    report.histories_out_of_time_order += len(np.unique(owner[1:][earlier]))


def _count_repeats(columns: list[pa.Array], offsets: np.ndarray, report: ReadReport) -> None:
    """Count the purchases equal to the one before them in the same history in every column
    (nulls equal nulls): a record written twice."""
    n = len(columns[0])
    if n < 2:
        return
    same = pa.array(np.ones(n - 1, dtype=bool))
    for column in columns:
        later, earlier = column.slice(1), column.slice(0, n - 1)
        both_null = pc.and_(pc.is_null(later), pc.is_null(earlier))
        same = pc.and_(same, pc.or_(pc.fill_null(pc.equal(later, earlier), False), both_null))
    same = same.to_numpy(zero_copy_only=False)
    same[offsets[1:-1] - 1] = False  # from one user's last purchase to the next one's first
    if not same.any():
        return
    owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    report.repeated_purchases += int(same.sum())
    report.histories_with_repeats += len(np.unique(owner[1:][same]))


def _to_sequences(table: pa.Table, report: ReadReport, sentinels: _Sentinels) -> pa.RecordBatch:
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
    description = item.field("description")
    # The release's placeholder, or nothing at all (the Amazon reader's items without one).
    placeholder = pc.fill_null(
        pc.or_(
            pc.equal(description, DESCRIPTION_PLACEHOLDER),
            pc.equal(pc.utf8_trim_whitespace(description), ""),
        ),
        False,
    )
    report.missing_descriptions += pc.sum(placeholder).as_py() or 0
    timestamp = _integral(pc.coalesce(*[review.field(key) for key in TIME_KEYS]), pa.int64())
    for key in TIME_KEYS:
        report.found[f"review.{key}"] += n_entries - review.field(key).null_count
    synthetic = table.column("synthetic")
    report.synthetic_users += pc.sum(pc.fill_null(synthetic, False)).as_py() or 0

    critique = _critiques(_coalesce(entries, CRITIQUE_KEYS), sentinels, report)
    report.found["critique"] += n_entries - critique.null_count

    interactions = pa.StructArray.from_arrays(
        [
            item.field("asin"),
            item.field("title"),
            _categories(item.field("category")),
            pc.if_else(placeholder, pa.scalar(None, _str), description),
            pc.if_else(unknown_price, pa.scalar(None, _num), price),
            _integral(review.field("rating"), pa.int32()),
            review.field("summary"),
            review.field("text"),
            timestamp,
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

    item_narratives = pa.StructArray.from_arrays(item_narratives, names=list(ITEM_NARRATIVES))
    _count_out_of_time_order(timestamp.to_numpy(), offsets, report)
    _count_repeats([item.field("asin"), timestamp, review.field("text")], offsets, report)

    pa_offsets = pa.array(offsets)
    return pa.RecordBatch.from_arrays(
        [
            table.column("reviewer_id").combine_chunks(),
            pa.ListArray.from_arrays(pa_offsets, interactions),
            pa.ListArray.from_arrays(pa_offsets, item_narratives),
            pa.StructArray.from_arrays(user_narratives, names=list(USER_NARRATIVES)),
            pa.StructArray.from_arrays(rater_groups, names=list(RATER_ATTRIBUTES)),
        ],
        schema=SEQUENCE_FEATURES.arrow_schema,
    )
