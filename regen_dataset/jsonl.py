"""JSON Lines files in blocks: Arrow parses them, Python says which line is wrong and why.

Both readers of this project, the REGEN release (`release.py`) and raw Amazon Reviews
(`regen_dataset.amazon`), read their files here, so that a line has one number everywhere:

- A file (plain or gzip) is cut into blocks of whole lines (`line_blocks`). A running counter
  carries the number of each block's first line from block to block: nothing is ever read twice.
  A last line without a newline is a line like the others.
- A line is *blank* when it holds nothing but spaces, tabs and carriage returns, whatever its
  length: Arrow skips it, and it keeps its number, so that the lines after it keep theirs.
- `parse_block` hands a block to Arrow's C++ JSON parser with the format's explicit schema, then
  runs the format's vectorised checks. That is the fast path, and the only one a clean block takes.
- A block that Arrow refuses, whose row count differs from its count of non-blank lines (two
  objects on one line), or with rows that fail a check, is looked at line by line in Python.
  Each bad line becomes a `LineError` naming the file, the line and the field; with
  `skip_bad_lines` it is skipped and handed to `on_skip` to be counted, otherwise the first one
  is raised. A line that Python reads but Arrow refuses (a key given twice, say) is found by
  parsing the block's lines one at a time with Arrow, and named with Arrow's own message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from regen_dataset.files import is_gzip
from regen_dataset.prefetch import prefetch

# What a blank line may hold besides its newline (JSON whitespace, as Arrow skips it).
BLANK_BYTES = b" \t\r"
_NEWLINE = 10


class LineError(ValueError):
    """A line of a JSON Lines file that cannot be read; names the file, line and field."""

    def __init__(self, path: str, line: int, field: str, message: str):
        self.path, self.line, self.field, self.message = path, line, field, message
        super().__init__(f"{path}, line {line}, field {field}: {message}")

    def __reduce__(self):  # raised in worker processes, re-raised in the parent
        return type(self), (self.path, self.line, self.field, self.message)


class BadField(Exception):
    """Raised by a format's line check: what is wrong, and where in the line."""

    def __init__(self, field: str, message: str):
        super().__init__(field, message)
        self.field, self.message = field, message


class NonFiniteNumber:
    """A number Python's `json` reads but no double holds (`1e400`, `NaN`, `Infinity`).

    Checks see it as what it is, not as a float: its `repr` is the text of the file.
    """

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


@dataclass(frozen=True)
class LineFormat:
    """How one kind of JSON line is parsed and checked."""

    name: str  # for progress bars and counts: "release", "reviews", "metadata"
    schema: pa.Schema  # Arrow's explicit schema; fields outside it are ignored
    error: type[LineError]  # the error class this format raises
    # Rows (0-based) of an Arrow table that fail the vectorised checks; empty when all is well.
    bad_rows: Callable[[pa.Table], np.ndarray]
    # One line, parsed by Python: raises `BadField`, else returns the row (values in schema
    # order) when `rows_from_python`, or anything when Arrow parses the good lines again.
    check: Callable[[object], tuple | None]
    # True where the format accepts shapes Arrow refuses (a string where a list is expected):
    # the rows of a block read line by line are then built from what `check` returns.
    rows_from_python: bool = False
    arrow_block_size: int = 1 << 20  # Arrow parses sub-blocks of this size in parallel


@dataclass(frozen=True)
class Block:
    """Whole lines of a file; `data` ends with a newline."""

    data: memoryview
    first_line: int  # the number of its first line, from 1
    lines: int  # how many lines it holds, blank ones included
    position: int  # bytes of the file on disk read so far (for progress bars)


@dataclass(frozen=True)
class ParsedBlock:
    table: pa.Table  # one row per good line, with the format's schema
    line_numbers: np.ndarray  # the line number of each row
    lines: int  # non-blank lines of the block: rows plus lines skipped
    block: Block


def read_blocks(
    path: str,
    form: LineFormat,
    *,
    skip_bad_lines: bool,
    on_skip: Callable[[LineError], None],
    block_bytes: int,
) -> Iterator[ParsedBlock]:
    """Parse a whole file block by block; reading and inflating run a block ahead in a thread."""
    for block in prefetch(line_blocks(path, block_bytes)):
        yield parse_block(path, block, form, skip_bad_lines=skip_bad_lines, on_skip=on_skip)


# ---------------------------------------------------------------------------------------------
# Blocks of whole lines


def _open_raw(path: str):
    """(the file on disk, its uncompressed stream); Arrow inflates without holding the GIL."""
    compressed = is_gzip(path)  # by its bytes: `R.JSON.GZ`, or a gzip file with no `.gz`
    raw = pa.OSFile(path)
    if not compressed:
        return raw, raw
    return raw, pa.CompressedInputStream(raw, "gzip")


def _read_into(stream, buffer: memoryview, path: str) -> int:
    try:
        return stream.readinto(buffer)
    except OSError as error:  # e.g. a truncated .gz: say which file
        raise OSError(f"{path}: {error}") from error


def line_blocks(path: str, block_bytes: int) -> Iterator[Block]:
    """The file's lines in blocks of about `block_bytes` (a longer line makes a longer block).

    Each block is read straight into its own buffer, after the partial line the previous block
    left over: one copy of the data, and one pass of numpy to count its lines.
    """
    raw, stream = _open_raw(path)
    with raw, stream:
        line, carry = 1, b""
        while True:
            buffer = bytearray(len(carry) + block_bytes)
            buffer[: len(carry)] = carry
            end = len(carry) + _read_into(stream, memoryview(buffer)[len(carry) :], path)
            if end == len(carry):
                break
            cut = buffer.rfind(b"\n", 0, end) + 1
            if cut == 0:  # a line longer than a block
                carry = bytes(buffer[:end])
                continue
            data = memoryview(buffer)[:cut]
            count = int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == _NEWLINE))
            yield Block(data, line, count, raw.tell())
            line += count
            carry = bytes(buffer[cut:end])
        if carry:  # the last line has no newline
            yield Block(memoryview(carry + b"\n"), line, 1, raw.tell())


def nonblank_lines(path: str, block_bytes: int = 16 << 20) -> Iterator[tuple[int, bytes]]:
    """(line number, text) of each non-blank line of a plain or gzipped file, one at a time."""
    for block in line_blocks(path, block_bytes):
        yield from zip(*_nonblank_lines(block), strict=True)


def row_line_numbers(block: Block) -> np.ndarray:
    """The number of each non-blank line of a block, in order: the rows Arrow makes of it."""
    raw = np.frombuffer(block.data, dtype=np.uint8)
    ends = np.flatnonzero(raw == _NEWLINE)
    starts = np.concatenate(([0], ends[:-1] + 1))
    # A line that ends with "}" (or "}\r") is not blank; only the others (rare) need a closer look.
    last = raw[np.maximum(ends - 1, 0)]
    before_cr = (
        (last == ord("\r")) & (ends - 1 > starts) & (raw[np.maximum(ends - 2, 0)] == ord("}"))
    )
    filled = (ends > starts) & ((last == ord("}")) | before_cr)
    for index in np.flatnonzero((ends > starts) & ~filled).tolist():
        filled[index] = bool(bytes(block.data[starts[index] : ends[index]]).strip(BLANK_BYTES))
    return block.first_line + np.flatnonzero(filled)


def _nonblank_lines(block: Block) -> tuple[list[int], list[bytes]]:
    numbers, texts = [], []
    for index, text in enumerate(bytes(block.data).split(b"\n")[:-1]):
        if text.strip(BLANK_BYTES):
            numbers.append(block.first_line + index)
            texts.append(text)
    return numbers, texts


# ---------------------------------------------------------------------------------------------
# Parsing: Arrow first, Python where Arrow refuses or a check fails


def arrow_parse(data, form: LineFormat) -> pa.Table:
    """Arrow's table of whole lines; raises `pa.ArrowInvalid` where Arrow refuses them."""
    options = pajson.ParseOptions(explicit_schema=form.schema, unexpected_field_behavior="ignore")
    buffer = pa.py_buffer(data)
    if not len(buffer):
        return form.schema.empty_table()
    try:
        read_options = pajson.ReadOptions(use_threads=True, block_size=form.arrow_block_size)
        table = pajson.read_json(pa.BufferReader(buffer), read_options, options)
    except pa.ArrowInvalid:
        # A line longer than a sub-block needs one sub-block for the whole block.
        if len(buffer) <= form.arrow_block_size:
            raise
        read_options = pajson.ReadOptions(use_threads=True, block_size=len(buffer) + 1)
        table = pajson.read_json(pa.BufferReader(buffer), read_options, options)
    # Arrow's JSON reader copies strings without checking that they are UTF-8: a bad byte would
    # reach the parquet files. Refused here, the lines go to the Python parser, which names them.
    table.validate(full=True)
    return table


def parse_block(
    path: str,
    block: Block,
    form: LineFormat,
    *,
    skip_bad_lines: bool,
    on_skip: Callable[[LineError], None],
) -> ParsedBlock:
    """A block's good lines as a table; a bad line raises, or is skipped and given to `on_skip`."""
    try:
        table = arrow_parse(block.data, form)
    except pa.ArrowInvalid:
        table = None
    if table is not None:
        # Counted exactly, never inferred from rows == lines: a blank line and a line holding two
        # objects would cancel out, and every row after them would get the wrong line.
        numbers = row_line_numbers(block)
        if len(numbers) == table.num_rows:
            bad = form.bad_rows(table)
            if not len(bad):
                return ParsedBlock(table, numbers, len(numbers), block)
            return _drop_bad_rows(path, block, form, table, numbers, bad, skip_bad_lines, on_skip)
    # Arrow refused the block, or made more rows than it has lines (two objects on one line).
    return _parse_lines(path, block, form, skip_bad_lines, on_skip)


def _raise_or_skip(errors: list[LineError], skip_bad_lines: bool, on_skip) -> None:
    if errors and not skip_bad_lines:
        raise min(errors, key=lambda error: error.line)
    for error in sorted(errors, key=lambda error: error.line):
        on_skip(error)


def loads(text: bytes) -> object:
    """One line as Python: `BadField` if malformed; numbers out of range as `NonFiniteNumber`."""
    try:
        return json.loads(text, parse_constant=NonFiniteNumber, parse_float=_finite_float)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            raise BadField(
                "<json>",
                f"more than one JSON value on the line (the second starts at column "
                f"{error.colno}); each line holds one object",
            ) from None
        raise BadField("<json>", f"malformed JSON ({error})") from None
    except ValueError as error:  # e.g. bytes that are not UTF-8
        raise BadField("<json>", f"malformed JSON ({error})") from None


def _finite_float(text: str) -> float | NonFiniteNumber:
    value = float(text)
    return value if value - value == 0 else NonFiniteNumber(text)


def _check(path: str, number: int, text: bytes, form: LineFormat):
    """(row or None, error or None) of one line."""
    try:
        return form.check(loads(text)), None
    except BadField as bad:
        return None, form.error(path, number, bad.field, bad.message)


def _drop_bad_rows(path, block, form, table, numbers, bad, skip_bad_lines, on_skip):
    """Arrow read every line, but some rows fail a check: name those lines, keep the rest."""
    _, texts = _nonblank_lines(block)
    errors = []
    for row in bad.tolist():
        _, error = _check(path, int(numbers[row]), texts[row], form)
        if error is None:  # a vectorised check that the line check does not know
            error = form.error(
                path, int(numbers[row]), "<line>", "fails a check of this format; please report"
            )
        errors.append(error)
    _raise_or_skip(errors, skip_bad_lines, on_skip)
    keep = np.ones(table.num_rows, dtype=bool)
    keep[bad] = False
    return ParsedBlock(table.filter(pa.array(keep)), numbers[keep], len(numbers), block)


def _parse_lines(path, block, form, skip_bad_lines, on_skip) -> ParsedBlock:
    """Every line of the block checked in Python; the good ones make the table."""
    numbers, texts = _nonblank_lines(block)
    rows, kept, errors = [], [], []
    for index, (number, text) in enumerate(zip(numbers, texts, strict=True)):
        row, error = _check(path, number, text, form)
        if error is None:
            rows.append(row)
            kept.append(index)
        else:
            errors.append(error)
    if form.rows_from_python:
        _raise_or_skip(errors, skip_bad_lines, on_skip)
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in form.schema]
        table = pa.table(
            [pa.array(values, type=f.type) for values, f in zip(columns, form.schema, strict=True)],
            schema=form.schema,
        )
    else:
        table, kept = _arrow_parse_lines(path, numbers, texts, kept, form, errors)
        _raise_or_skip(errors, skip_bad_lines, on_skip)
        if len(form.bad_rows(table)):  # the line check missed what the vectorised one found
            row = int(form.bad_rows(table)[0])
            raise form.error(
                path, numbers[kept[row]], "<line>", "fails a check of this format; please report"
            )
    line_numbers = np.array([numbers[index] for index in kept], dtype=np.int64)
    return ParsedBlock(table, line_numbers, len(numbers), block)


_ARROW_COLUMN = re.compile(r"Column\(([^)]*)\)")


def _arrow_parse_lines(path, numbers, texts, kept, form, errors) -> tuple[pa.Table, list[int]]:
    """Arrow's table of the lines Python found good; lines Arrow still refuses become errors."""
    try:
        return arrow_parse(b"".join(texts[index] + b"\n" for index in kept), form), kept
    except pa.ArrowInvalid:
        pass
    accepted = []
    for index in kept:  # rare: find the lines Arrow refuses, one at a time
        try:
            arrow_parse(texts[index] + b"\n", form)
            accepted.append(index)
        except pa.ArrowInvalid as refused:
            errors.append(form.error(path, numbers[index], *_arrow_problem(str(refused))))
    return arrow_parse(b"".join(texts[index] + b"\n" for index in accepted), form), accepted


def _arrow_problem(message: str) -> tuple[str, str]:
    """(field, message) from Arrow's "JSON parse error: Column(/a/[]/b) changed ... in row 0"."""
    message = message.removeprefix("JSON parse error: ")
    message = re.sub(r"\.? in row \d+$", "", message).strip()
    match = _ARROW_COLUMN.search(message)
    if not match or not match.group(1):
        return "<line>", f"Arrow cannot read this line: {message}"
    field = match.group(1).strip("/").replace("/[]", "[]").replace("/", ".")
    return field, f"Arrow cannot read this line: {message}"
