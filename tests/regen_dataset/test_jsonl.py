import gzip
import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from regen_dataset.jsonl import BadField, LineError, LineFormat, line_blocks, read_blocks

SCHEMA = pa.schema([("id", pa.string()), ("n", pa.float64())])


def _check(value) -> None:
    if not isinstance(value, dict):
        raise BadField("<line>", "expected an object")
    if not isinstance(value.get("id"), str):
        raise BadField("id", "required string")
    if not isinstance(value.get("n"), (int, float)) or value["n"] < 0:
        raise BadField("n", "expected a number >= 0")


def _bad_rows(table: pa.Table) -> np.ndarray:
    bad = pc.or_(pc.is_null(table.column("id")), pc.less(pc.fill_null(table.column("n"), -1), 0))
    return np.flatnonzero(pc.fill_null(bad, True).to_numpy(zero_copy_only=False))


FORMAT = LineFormat("toy", SCHEMA, LineError, _bad_rows, _check)


def _read(path, block_bytes, skip=False):
    skipped = []
    rows, numbers = [], []
    for parsed in read_blocks(
        str(path), FORMAT, skip_bad_lines=skip, on_skip=skipped.append, block_bytes=block_bytes
    ):
        rows += parsed.table.column("id").to_pylist()
        numbers += parsed.line_numbers.tolist()
    return rows, numbers, skipped


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("block_bytes", [7, 64, 1 << 20])
def test_every_line_keeps_its_number(tmp_path, suffix, block_bytes):
    """Blank lines of any length, CRLF endings, a line longer than a block, no final newline."""
    rng = random.Random(7)
    lines, expected = [], {}
    for index in range(300):
        kind = rng.random()
        if kind < 0.2:
            lines.append(rng.choice(["", " ", "\t" * 20, " \r", " " * 300]))
        else:
            text = json.dumps({"id": f"L{index}", "n": index, "pad": "x" * rng.randint(0, 120)})
            lines.append(text + ("\r" if kind < 0.3 else ""))
            expected[len(lines)] = f"L{index}"
    text = "\n".join(lines)  # the last line has no newline
    path = tmp_path / f"toy.jsonl{suffix}"
    if suffix:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    blocks = list(line_blocks(str(path), block_bytes))
    assert sum(block.lines for block in blocks) == len(lines)
    rows, numbers, _ = _read(path, block_bytes)
    assert dict(zip(numbers, rows, strict=True)) == expected


def test_bad_lines_are_named_or_skipped(tmp_path):
    lines = [json.dumps({"id": f"L{i}", "n": i}) for i in range(20)]
    lines[4] = json.dumps({"id": "L4", "n": -1})  # Arrow reads it; the vectorised check refuses
    lines[9] = '{"id": "L9", "n": "many"}'  # Arrow refuses the block
    lines[13] = '{"id": "L13", "n": 1, "n": 2}'  # Python reads it; Arrow refuses a key twice
    lines[16] = lines[16] + lines[17]  # two objects on one line
    path = tmp_path / "toy.jsonl"
    path.write_text("\n".join(lines) + "\n")
    for block_bytes in (50, 1 << 20):
        with pytest.raises(LineError) as error:
            _read(path, block_bytes)
        assert (error.value.line, error.value.field) == (5, "n")
        rows, numbers, skipped = _read(path, block_bytes, skip=True)
        assert [(e.line, e.field) for e in skipped] == [
            (5, "n"),
            (10, "n"),
            (14, "n"),
            (17, "<json>"),
        ]
        assert "specified twice" in skipped[2].message
        assert "more than one JSON value" in skipped[3].message
        assert rows == [f"L{i}" for i in range(20) if i not in (4, 9, 13, 16)]
        assert numbers == [i + 1 for i in range(20) if i not in (4, 9, 13, 16)]


def test_a_byte_that_is_not_utf8_is_named_not_copied(tmp_path):
    """Arrow's JSON reader copies such bytes into its strings unchecked; they must not reach a
    table (and the parquet files), but make an error that names the line."""
    lines = [json.dumps({"id": f"L{i}", "n": i}).encode() for i in range(6)]
    lines[3] = b'{"id": "caf\xe9", "n": 3}'
    path = tmp_path / "toy.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    for block_bytes in (40, 1 << 20):
        with pytest.raises(LineError) as error:
            _read(path, block_bytes)
        assert error.value.line == 4 and "utf-8" in error.value.message.lower()
        rows, numbers, skipped = _read(path, block_bytes, skip=True)
        assert rows == ["L0", "L1", "L2", "L4", "L5"] and [e.line for e in skipped] == [4]


@pytest.mark.parametrize("name", ["TOY.JSONL.GZ", "toy.jsonl"])
def test_gzip_is_told_by_its_bytes_not_its_name(tmp_path, name):
    """An upper-case `.GZ`, or a gzip file whose name lost its `.gz`, is read as gzip."""
    path = tmp_path / name
    with gzip.open(path, "wt") as handle:
        handle.write("".join(json.dumps({"id": f"L{i}", "n": i}) + "\n" for i in range(5)))
    rows, numbers, _ = _read(path, 1 << 20)
    assert rows == [f"L{i}" for i in range(5)] and numbers == [1, 2, 3, 4, 5]
