import datetime
import gzip
import json
import os
import re

import pyarrow as pa
import pytest

from regen_dataset.release import (
    PARSE_SCHEMA,
    ReadReport,
    ReleaseFormatError,
    iter_users,
    read_release,
)
from regen_dataset.schema import SEQUENCE_FEATURES
from tests.conftest import entry, real_fixture, user, write_lines

T0 = 1_400_000_000  # a plausible review time (2014)


def test_reads_canonical_sequences(tmp_path):
    path = write_lines(tmp_path / "office.jsonl", [user("U1", 3), user("U2", 5)])
    report = ReadReport()
    batches = list(read_release(path, report=report))
    assert batches[0].schema == SEQUENCE_FEATURES.arrow_schema
    users = [u for b in batches for u in b.to_pylist()]
    assert [u["user_id"] for u in users] == ["U1", "U2"]
    first = users[0]["interactions"][0]
    assert first["item_id"] == "U1-0"
    assert first["categories"] == ["Office Products", "Paper", "Notebooks", "Spiral", "Small"]
    assert first["timestamp"] == 1_400_000_000 and first["rating"] == 5 and first["price"] == 9.5
    assert first["review_title"] == "Title U1-0" and first["review_text"] == "Review of U1-0"
    # Item narratives of the last purchase come from `last_purchase`; earlier ones are null.
    narratives = users[1]["item_narratives"]
    assert narratives[-1]["product_endorsement"] == "endorsement U2"
    assert all(n["purchase_reason"] is None for n in narratives[:-1])
    assert users[1]["user_narratives"] == {
        "user_summary_brief": "brief U2",
        "user_summary_long": "long U2",
        "user_profile": "profile U2",
    }
    assert (
        users[0]["rater"]["user"]["veracity"] == 6 and users[0]["rater"]["example"]["richness"] == 5
    )
    assert users[0]["rater"]["last_purchase"]["foresight"] is None
    assert report.users == 2 and report.interactions == 8 and report.lines == 2


def test_release_variants(tmp_path):
    """unix_time, a padded category, price 0.0, critiques under either key, sentinels."""
    history = [
        entry(
            "A",
            T0 + 10,
            category=" Office & School Supplies - Paper  -  T-Shirts Printing - Pads",
            price=0.0,
        ),
        entry("B", T0 + 20, critique="<NO_CRITIQUE>"),
        entry("C", T0 + 30, critique="  n/a "),
        entry("D", T0 + 40, user_critique="Do you have it in blue?"),
        entry("E", T0 + 50, critique="[None]"),
        entry("F", T0 + 60, critique="I'd like a cheaper one."),
    ]
    for e in history:
        e["review"]["unix_time"] = e["review"].pop("timestamp")
    line = user("U", 0, purchase_history=history, last_purchase={"product_endorsement": "buy it"})
    report = ReadReport()
    (u,) = iter_users(write_lines(tmp_path / "x_office.jsonl", [line]), report=report)
    items = u["interactions"]
    assert items[0]["categories"] == [
        "Office & School Supplies",
        "Paper",
        "T-Shirts Printing",
        "Pads",
    ]
    assert items[0]["price"] is None and items[1]["price"] == 9.5
    assert [i["timestamp"] for i in items] == [T0 + t for t in (10, 20, 30, 40, 50, 60)]
    assert [i["critique"] for i in items] == [
        None,
        None,
        None,
        "Do you have it in blue?",
        None,
        "I'd like a cheaper one.",
    ]
    assert u["item_narratives"][-1]["product_endorsement"] == "buy it"
    assert report.critique_sentinels == 3 and report.found["critique"] == 2
    assert report.found["review.unix_time"] == 6 and report.found["review.timestamp"] == 0
    assert report.unknown_price == 1
    assert "critiques: 2" in report.summary()


def test_extra_sentinel_and_gzip(tmp_path):
    line = user("U", 0, purchase_history=[entry("A", T0), entry("B", T0 + 1, critique="--SKIP--")])
    path = tmp_path / "office.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(json.dumps(line) + "\n")
    (u,) = iter_users(path, extra_critique_sentinels=["skip"])
    assert u["interactions"][1]["critique"] is None


def test_a_named_sentinel_is_read_as_none_whatever_its_length(tmp_path):
    placeholder = "No critique: items are not similar enough."  # 42 characters
    history = [entry(f"I{i}", T0 + i, critique=placeholder if i else None) for i in range(4)]
    history[3]["critique"] = "No critique, items are NOT similar enough"  # same key
    history.append(entry("I4", T0 + 4, critique="No critique is needed: I want it bigger please."))
    path = write_lines(tmp_path / "office.jsonl", [user("U", 0, purchase_history=history)])
    report = ReadReport()
    (u,) = iter_users(path, extra_critique_sentinels=[placeholder], report=report)
    assert [i["critique"] for i in u["interactions"]] == [None] * 4 + [
        "No critique is needed: I want it bigger please."
    ]
    assert report.critique_sentinels == 3 and report.found["critique"] == 1
    (plain,) = iter_users(path)  # without it, a long text is a critique
    assert sum(i["critique"] is not None for i in plain["interactions"]) == 4


def test_description_placeholder_missing_is_read_as_null_and_counted(tmp_path):
    history = [entry(f"I{i}", T0 + i) for i in range(5)]
    history[1]["item"]["description"] = "missing"  # the release's placeholder
    history[2]["item"]["description"] = "missing zipper pull, otherwise fine"
    history[3]["item"]["description"] = None
    history[4]["item"]["description"] = "  "  # what the Amazon reader writes for none
    report = ReadReport()
    path = write_lines(tmp_path / "clothing.jsonl", [user("U", 0, purchase_history=history)])
    (u,) = iter_users(path, report=report)
    assert [i["description"] for i in u["interactions"]] == [
        "About I0",
        None,
        "missing zipper pull, otherwise fine",
        None,
        None,
    ]
    assert report.missing_descriptions == 2
    assert 'descriptions read as null (blank, or the placeholder "missing"): 2' in report.summary()
    assert report.to_dict()["missing_descriptions"] == 2


def test_unknown_fields_are_reported(tmp_path):
    line = user("U", 2, brand_new={"x": 1})
    line["purchase_history"][-1]["item"]["colour"] = "red"
    report = ReadReport()
    list(read_release(write_lines(tmp_path / "office.jsonl", [line]), report=report))
    assert set(report.unknown_fields) == {"brand_new", "purchase_history[].item.colour"}
    assert "brand_new" in report.summary()


def test_blocks_keep_line_numbers(tmp_path):
    """Many small blocks, blank lines: users stay whole and errors name the right line."""
    lines = [user(f"U{i}", 3) for i in range(40)]
    lines.insert(7, "")
    lines.insert(20, "   ")
    lines[33] = '{"reviewer_id": "broken"'
    path = write_lines(tmp_path / "office.jsonl", lines)
    with pytest.raises(ReleaseFormatError) as error:
        list(read_release(path, block_bytes=700))
    assert error.value.line == 34 and error.value.field == "<json>"
    report = ReadReport()
    users = [
        u
        for b in read_release(path, block_bytes=700, skip_bad_lines=True, report=report)
        for u in b.to_pylist()
    ]
    assert len(users) == 39 and report.skipped_lines == 1
    assert report.skipped_examples[0].startswith(f"{path}, line 34, field <json>")


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (
            lambda u: u["purchase_history"][2]["item"].pop("asin"),
            "purchase_history[2].item.asin",
            "missing",
        ),
        (
            lambda u: u["purchase_history"][1]["item"].update(price="12.99"),
            "purchase_history[1].item.price",
            "expected a number",
        ),
        (
            lambda u: u["purchase_history"][0]["review"].update(rating=None),
            "purchase_history[0].review.rating",
            "missing",
        ),
        (
            lambda u: u["purchase_history"][3]["review"].pop("timestamp"),
            "purchase_history[3].review.timestamp|unix_time",
            "missing",
        ),
        (lambda u: u.update(purchase_history={"a": 1}), "purchase_history", "expected a list"),
        (lambda u: u.update(purchase_history=[]), "purchase_history", "at least one purchase"),
        (lambda u: u.pop("reviewer_id"), "reviewer_id", "missing"),
        (lambda u: u["user"].update(profile=["a"]), "user.profile", "expected a string"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, mutate, field, message):
    lines = [user(f"U{i}", 4) for i in range(5)]
    mutate(lines[3])
    path = write_lines(tmp_path / "office.jsonl", lines)
    with pytest.raises(ReleaseFormatError) as error:
        list(read_release(path))
    assert (error.value.path, error.value.line, error.value.field) == (str(path), 4, field)
    assert message in str(error.value) and str(path) in str(error.value)
    report = ReadReport()
    users = [
        u["user_id"]
        for b in read_release(path, skip_bad_lines=True, report=report)
        for u in b.to_pylist()
    ]
    assert users == ["U0", "U1", "U2", "U4"]
    assert report.skipped_lines == 1 and report.lines == 5


def _release_line_from_flattened(rows: list[dict]) -> dict:
    """The real flattened Office user, turned back into a release line (unix_time variant)."""
    history = []
    for row in rows:
        day = datetime.datetime.strptime(row["purchase_date"], "%m/%d/%Y").replace(
            tzinfo=datetime.timezone.utc
        )
        history.append(
            {
                # The flattening stripped the root level; put it back as the release has it.
                "item": {
                    "asin": row["asin"],
                    "title": row["title"],
                    "category": "Office Products -" + row["category"],
                    "description": "",
                    "price": row["price"],
                },
                "review": {
                    "summary": "",
                    "rating": row["rating"],
                    "text": row["review"],
                    "unix_time": int(day.timestamp()),
                },
            }
        )
    return {
        "reviewer_id": rows[0]["reviewer_id"],
        "purchase_history": history,
        "user": {"long_summary": rows[0]["long_summary"]},
    }


def test_real_office_user(tmp_path):
    rows = json.loads(real_fixture("regen_office_user_flattened.json").read_text())
    path = write_lines(tmp_path / "office.jsonl", [_release_line_from_flattened(rows)])
    report = ReadReport()
    (u,) = iter_users(path, report=report)
    assert u["user_id"] == "A101G2KLTWSA51" and len(u["interactions"]) == len(rows) == 10
    first = u["interactions"][0]
    assert first["categories"] == [
        "Office Products",
        "Office & School Supplies",
        "Envelopes, Mailers & Shipping Supplies",
        "Postal Scales",
    ]
    assert first["timestamp"] == 1_405_987_200  # 07/22/2014
    assert [i["item_id"] for i in u["interactions"]] == [r["asin"] for r in rows]
    assert u["user_narratives"]["user_summary_long"].startswith("This customer's purchase history")
    assert report.found["user.long_summary"] == 1 and report.found["critique"] == 0


def _clothing_columns() -> tuple[list[str], dict[str, str]]:
    text = real_fixture("regen_clothing_v1_columns_and_stats.txt").read_text()
    names = re.findall(r"'(properties\.[^']+)'", text.split("Statistics:")[0])
    examples = dict(re.findall(r"^(properties\.\S+): \w+\nExample: (.*)$", text, flags=re.M))
    return names, examples


def _known_paths(schema_type, prefix=""):
    for child in schema_type:
        name = f"{prefix}.{child.name}" if prefix else child.name
        if pa.types.is_struct(child.type):
            yield from _known_paths(child.type, name)
        elif pa.types.is_list(child.type):
            yield from _known_paths(child.type.value_type, name + "[]")
        else:
            yield name


def test_reader_knows_every_column_of_the_real_clothing_release():
    names, _ = _clothing_columns()
    assert len(names) > 400
    paths = {re.sub(r"\.\d+\.", "[].", name.removeprefix("properties.")) for name in names}
    assert paths <= set(_known_paths(PARSE_SCHEMA)), paths - set(_known_paths(PARSE_SCHEMA))


def test_real_clothing_example_values_round_trip(tmp_path):
    """Rebuild a release line from the real per-column examples (ratings and times as floats)."""
    _, examples = _clothing_columns()
    line: dict = {"reviewer_id": "REAL", "purchase_history": []}
    for name, raw in examples.items():
        keys = name.removeprefix("properties.").split(".")
        if keys[0] == "purchase_history":
            index = int(keys[1]) - 1
            while len(line["purchase_history"]) <= index:
                line["purchase_history"].append({"item": {}, "review": {}})
            target, keys = line["purchase_history"][index], keys[2:]
        else:
            target = line
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        value = raw
        if keys[-1] in {"price", "rating", "timestamp"} or name.startswith("properties.metadata"):
            value = float(raw)
        target[keys[-1]] = value
    line["purchase_history"] = [e for e in line["purchase_history"] if e["item"].get("asin")]
    (u,) = iter_users(write_lines(tmp_path / "clothing.jsonl", [line]))
    # The examples come from different rows, so their times are not in order: look up by item.
    (first,) = [
        i
        for i in u["interactions"]
        if i["item_id"] == examples["properties.purchase_history.1.item.asin"]
    ]
    assert first["rating"] == 4 and first["timestamp"] == 1_455_494_400
    assert u["rater"]["last_purchase"]["veracity"] == int(
        float(examples["properties.metadata.last_purchase.veracity"])
    )
    assert u["user_narratives"]["user_profile"] == examples["properties.user.profile"]


# ---------------------------------------------------------------------------------------------
# Every line is numbered right and every bad value is named, whatever the block boundaries


def _read_ids(path, **kwargs) -> list[str]:
    return [u["user_id"] for b in read_release(path, **kwargs) for u in b.to_pylist()]


def _write_raw(path, text: str):
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["office.jsonl", "office.jsonl.gz"])
@pytest.mark.parametrize("skip", [False, True])
def test_last_line_without_newline(tmp_path, name, skip):
    good = "\n".join(json.dumps(user(f"U{i}", 3)) for i in range(3))
    path = _write_raw(tmp_path / name, good + '\n{"reviewer_id": "broken"')
    if not skip:
        with pytest.raises(ReleaseFormatError) as error:
            _read_ids(path)
        assert (error.value.line, error.value.field) == (4, "<json>")
    else:
        report = ReadReport()
        assert _read_ids(path, skip_bad_lines=True, report=report) == ["U0", "U1", "U2"]
        assert report.skipped_lines == 1 and report.lines == 4
        assert report.skipped_examples[0].startswith(f"{path}, line 4, field <json>")
    # A well-formed last line without a newline is read like any other.
    assert _read_ids(_write_raw(tmp_path / name, good)) == ["U0", "U1", "U2"]


@pytest.mark.parametrize("block_bytes", [16 << 20, 900])
def test_long_whitespace_lines_are_blank_and_keep_numbers(tmp_path, block_bytes):
    lines = [user("U0", 3), " " * 40, "\t \t   \r", user("U1", 3), '{"reviewer_id": "broken"']
    path = write_lines(tmp_path / "office.jsonl", lines)
    with pytest.raises(ReleaseFormatError) as error:
        _read_ids(path, block_bytes=block_bytes)
    assert (error.value.line, error.value.field) == (5, "<json>")
    report = ReadReport()
    assert _read_ids(path, skip_bad_lines=True, report=report, block_bytes=block_bytes) == [
        "U0",
        "U1",
    ]
    assert report.lines == 3 and report.skipped_lines == 1


def _bytes_read() -> int:
    with open("/proc/self/io") as handle:
        return int(next(line for line in handle if line.startswith("rchar:")).split()[1])


def test_skipping_bad_lines_reads_the_file_once(tmp_path):
    if not os.path.exists("/proc/self/io"):
        pytest.skip("needs Linux's /proc/self/io to count the bytes read")
    lines = []
    for i in range(400):
        lines.append(user(f"U{i}", 20))
        if i % 20 == 19:  # a bad line in every block
            lines.append('{"reviewer_id": "broken"')
    path = write_lines(tmp_path / "office.jsonl", lines)
    size = path.stat().st_size
    report = ReadReport()
    before = _bytes_read()
    assert len(_read_ids(path, skip_bad_lines=True, report=report, block_bytes=size // 20)) == 400
    assert report.skipped_lines == 20
    assert _bytes_read() - before < 1.5 * size


def test_a_line_arrow_refuses_but_python_reads_is_named(tmp_path):
    lines = [user(f"U{i}", 3) for i in range(5)]
    text = [json.dumps(line) for line in lines]
    text[2] = text[2].replace('"price": 9.5', '"price": 1e400', 1)
    text[3] = text[3].replace('"reviewer_id": "U3"', '"reviewer_id": "U3", "reviewer_id": "U3b"')
    path = _write_raw(tmp_path / "office.jsonl", "\n".join(text) + "\n")
    with pytest.raises(ReleaseFormatError) as error:
        _read_ids(path)
    assert (error.value.line, error.value.field) == (3, "purchase_history[0].item.price")
    assert "1e400" in str(error.value)
    report = ReadReport()
    assert _read_ids(path, skip_bad_lines=True, report=report) == ["U0", "U1", "U4"]
    assert report.skipped_lines == 2
    assert report.skipped_examples[1].startswith(f"{path}, line 4, field reviewer_id")


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda e: e["review"].update(rating=9), "review.rating", "whole number from 1 to 5"),
        (lambda e: e["review"].update(rating=4.5), "review.rating", "whole number from 1 to 5"),
        (lambda e: e["review"].update(rating=0), "review.rating", "whole number from 1 to 5"),
        (
            lambda e: e["review"].update(timestamp=1_400_000_000_000),
            "review.timestamp",
            "milliseconds",
        ),
        (lambda e: e["review"].update(timestamp=86_400), "review.timestamp", "unix seconds"),
        (lambda e: e["review"].update(rating=10**400), "review.rating", "whole number from 1"),
        (
            lambda e: e["review"].update(unix_time=1_900_000_000, timestamp=None),
            "review.unix_time",
            "unix seconds",
        ),
        (lambda e: e["item"].update(price=float("nan")), "item.price", "finite number"),
    ],
)
@pytest.mark.parametrize("block_bytes", [16 << 20, 1500])
def test_implausible_values_name_the_field(tmp_path, mutate, field, message, block_bytes):
    lines = [user(f"U{i}", 4) for i in range(5)]
    mutate(lines[3]["purchase_history"][2])
    path = write_lines(tmp_path / "office.jsonl", lines)
    with pytest.raises(ReleaseFormatError) as error:
        _read_ids(path, block_bytes=block_bytes)
    assert (error.value.line, error.value.field) == (4, f"purchase_history[2].{field}")
    assert message in str(error.value)
    report = ReadReport()
    assert _read_ids(path, skip_bad_lines=True, report=report, block_bytes=block_bytes) == [
        "U0",
        "U1",
        "U2",
        "U4",
    ]
    assert report.skipped_lines == 1


def test_ratings_and_times_written_as_whole_floats_are_read(tmp_path):
    line = user("U", 3)
    for e in line["purchase_history"]:
        e["review"]["rating"] = 4.0
        e["review"]["timestamp"] = float(e["review"]["timestamp"])
    (u,) = iter_users(write_lines(tmp_path / "office.jsonl", [line]))
    assert [i["rating"] for i in u["interactions"]] == [4, 4, 4]


def test_two_objects_on_one_line_are_an_error(tmp_path):
    text = [json.dumps(user(f"U{i}", 3)) for i in range(4)]
    text[1] = text[1] + text[2]
    del text[2]
    path = _write_raw(tmp_path / "office.jsonl", "\n".join(text) + "\n")
    with pytest.raises(ReleaseFormatError, match="more than one JSON value") as error:
        _read_ids(path)
    assert (error.value.line, error.value.field) == (2, "<json>")
    report = ReadReport()
    assert _read_ids(path, skip_bad_lines=True, report=report) == ["U0", "U3"]
    assert report.skipped_lines == 1 and report.users == 2
    # A blank line in the same block makes the row count equal the line count again: the two
    # objects must still be found, and a bad line after them still named by its own number.
    text = [json.dumps(user(f"U{i}", 3)) for i in range(3)]
    bad = user("U3", 3)
    bad["purchase_history"][0]["review"]["rating"] = 9
    raw = text[0] + text[1] + "\n\n" + text[2] + "\n" + json.dumps(bad) + "\n"
    path = _write_raw(tmp_path / "blank.jsonl", raw)
    with pytest.raises(ReleaseFormatError, match="more than one JSON value") as error:
        _read_ids(path)
    assert (error.value.line, error.value.field) == (1, "<json>")
    report = ReadReport()
    assert _read_ids(path, skip_bad_lines=True, report=report) == ["U2"]
    assert [e.split(", field")[0] for e in report.skipped_examples] == [
        f"{path}, line 1",
        f"{path}, line 4",
    ]


def test_history_out_of_time_order_keeps_the_file_order_and_is_counted(tmp_path):
    history = [
        entry(f"I{i}", T0 + 86_400 * day, critique=f"I{i - 1} to I{i}" if i else None)
        for i, day in enumerate([3, 1, 2, 2])
    ]
    history[0]["reason"] = "why I0"
    line = user("U", 0, purchase_history=history, last_purchase={"reason": "why I3"})
    report = ReadReport()
    (u, ordered) = iter_users(
        write_lines(tmp_path / "office.jsonl", [line, user("V", 3)]), report=report
    )
    # The texts were written on the file's order: a critique is about the line above it, the
    # last-purchase narratives about the last line. Re-sorting would move them to other pairs.
    assert [i["item_id"] for i in u["interactions"]] == ["I0", "I1", "I2", "I3"]
    assert [i["critique"] for i in u["interactions"]] == [None, "I0 to I1", "I1 to I2", "I2 to I3"]
    assert [n["purchase_reason"] for n in u["item_narratives"]] == ["why I0", None, None, "why I3"]
    assert [i["item_id"] for i in ordered["interactions"]] == ["V-0", "V-1", "V-2"]
    assert report.histories_out_of_time_order == 1
    assert "1 histories have times out of the file's order" in report.summary()
    assert report.to_dict()["histories_out_of_time_order"] == 1


def test_a_purchase_written_twice_is_kept_and_counted(tmp_path):
    history = [entry(f"I{i}", T0 + 86_400 * i) for i in range(4)]
    history.append(json.loads(json.dumps(history[-1])))  # the last record, twice
    again = [entry(f"J{i}", T0 + 86_400 * i) for i in range(4)]
    again[2]["review"]["timestamp"] = again[1]["review"]["timestamp"]
    again[2]["item"]["asin"] = "J1"  # same item and time, another review: not a repeat
    lines = [user("U", 0, purchase_history=history), user("V", 0, purchase_history=again)]
    report = ReadReport()
    u, v = iter_users(write_lines(tmp_path / "office.jsonl", lines), report=report)
    assert [i["item_id"] for i in u["interactions"]] == ["I0", "I1", "I2", "I3", "I3"]
    assert (report.repeated_purchases, report.histories_with_repeats) == (1, 1)
    assert "1 purchases in 1 histories repeat the purchase before them" in report.summary()


@pytest.mark.parametrize("block_bytes", [16 << 20, 1200])
def test_a_user_twice_names_both_lines(tmp_path, block_bytes):
    lines = [user(f"U{i}", 3) for i in range(6)]
    lines[4] = user("U1", 2)
    path = write_lines(tmp_path / "office.jsonl", lines)
    with pytest.raises(ReleaseFormatError) as error:
        _read_ids(path, block_bytes=block_bytes)
    assert (error.value.line, error.value.field) == (5, "reviewer_id")
    assert f"{path}, line 2" in str(error.value)
    report = ReadReport()
    ids = _read_ids(path, skip_bad_lines=True, report=report, block_bytes=block_bytes)
    assert ids == ["U0", "U1", "U2", "U3", "U5"] and report.skipped_lines == 1
    assert report.duplicate_users == 1 and "1 of them users already read" in report.summary()


def test_a_user_in_two_files_names_both(tmp_path):
    first = write_lines(tmp_path / "a.jsonl", [user("U0", 3), user("U1", 3)])
    second = write_lines(tmp_path / "b.jsonl", [user("U2", 3), user("U0", 3)])
    with pytest.raises(ReleaseFormatError) as error:
        _read_ids([first, second])
    assert (error.value.path, error.value.line) == (str(second), 2)
    assert f"{first}, line 1" in str(error.value)


def test_synthetic_lines_are_counted(tmp_path):
    lines = [user("U0", 3, synthetic=True), user("U1", 3, synthetic=False), user("U2", 3)]
    report = ReadReport()
    assert _read_ids(write_lines(tmp_path / "office.jsonl", lines), report=report) == [
        "U0",
        "U1",
        "U2",
    ]
    assert report.synthetic_users == 1 and report.to_dict()["synthetic_users"] == 1
    assert "synthetic" in report.summary() and not report.unknown_fields
    lines[1]["synthetic"] = "yes"
    with pytest.raises(ReleaseFormatError, match="expected a boolean") as error:
        _read_ids(write_lines(tmp_path / "office.jsonl", lines))
    assert (error.value.line, error.value.field) == (2, "synthetic")


@pytest.mark.parametrize("score", [float("nan"), 1e12])
def test_a_rater_score_that_is_not_a_score_is_named(tmp_path, score):
    lines = [user(f"U{i}", 3) for i in range(4)]
    lines[2]["metadata"]["user"]["veracity"] = score
    path = write_lines(tmp_path / "office.jsonl", lines)
    with pytest.raises(ReleaseFormatError) as error:
        _read_ids(path)
    assert (error.value.line, error.value.field) == (3, "metadata.user.veracity")
    assert _read_ids(path, skip_bad_lines=True) == ["U0", "U1", "U3"]
