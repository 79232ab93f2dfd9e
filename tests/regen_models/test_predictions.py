import gzip
import json

import pytest

from regen_models.predictions import PredictionFormatError, read_predictions, write_predictions
from tests.conftest import write_lines

RANKED = [f"I{i}" for i in range(10)]


def _line(user_id, **kwargs):
    return {
        "user_id": user_id,
        "ranked_items": RANKED,
        "narratives": {"user_profile": f"p {user_id}"},
        **kwargs,
    }


def test_round_trip_and_reordering(tmp_path):
    path = tmp_path / "p.jsonl"
    write_predictions(path, ["U1", "U2"], [RANKED, RANKED[::-1]], {"purchase_reason": ["a", "b"]})
    predictions = read_predictions(path)
    assert predictions.user_ids == ["U1", "U2"] and predictions.narratives == {
        "purchase_reason": ["a", "b"]
    }
    ordered = predictions.for_users(["U2", "U1"])
    assert ordered.ranked_items[0] == RANKED[::-1] and ordered.narratives["purchase_reason"] == [
        "b",
        "a",
    ]
    with pytest.raises(PredictionFormatError, match="no prediction for 1 users of office test"):
        predictions.for_users(["U1", "U2", "U3"], where="office test")
    with pytest.raises(PredictionFormatError, match=r"e\.g\. \['U0'\]$"):  # not a prefix: no hint
        predictions.for_users(["U0", "U1", "U2"], where="office test")
    with pytest.raises(
        PredictionFormatError, match="p.jsonl, line 2: user 'U2' is not in the evaluated split"
    ):
        predictions.for_users(["U1"])


def test_narratives_only(tmp_path):
    path = write_lines(
        tmp_path / "p.jsonl", [{"user_id": "U1", "narratives": {"user_profile": "x"}}]
    )
    assert read_predictions(path).ranked_items is None


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([_line("U1"), "{oops"], "line 2: malformed JSON"),
        ([_line("U1"), _line("U1")], "line 2: user 'U1' already predicted on line 1"),
        ([_line("U1"), {"ranked_items": RANKED}], "line 2: field user_id"),
        (
            [_line("U1", ranked_items=RANKED[:9])],
            "line 1: field ranked_items: 9 items, at least 10",
        ),
        (
            [_line("U1", ranked_items=RANKED + ["I0"])],
            "line 1: field ranked_items: an item id is repeated ('I0'",
        ),
        (
            [_line("U1", ranked_items=[1] * 10)],
            "line 1: field ranked_items: expected a list of item id strings",
        ),
        (
            [_line("U1"), {"user_id": "U2", "narratives": {"user_profile": "x"}}],
            "line 2: field ranked_items: absent here, present on line 1",
        ),
        (
            [{"user_id": "U0", "ranked_items": None, "narratives": {"user_profile": "x"}}]
            + [_line("U1")],
            "line 2: field ranked_items: present here, absent on line 1",
        ),
        ([_line("U1"), _line("U2", narratives={})], "line 2: field narratives: kinds"),
        (
            [_line("U1", narratives={"summary": "x"})],
            "line 1: field narratives: unknown kind 'summary'",
        ),
        (
            [_line("U1", narratives={"user_profile": 3})],
            "line 1: field narratives.user_profile: expected a string",
        ),
        ([{"user_id": "U1"}], "line 1: neither ranked_items nor narratives"),
        ([_line("U1", narratives=[])], "line 1: field narratives: expected an object"),
        (['{"user_id": "U1", "user_id": "U2"}'], "line 1: malformed JSON .key 'user_id' given tw"),
        ([_line("U1", split="")], "line 1: field split: expected a non-empty string"),
        (
            [_line("U1", split="test"), _line("U2", split="validation")],
            "line 2: field split: 'validation' here, 'test' on the first line",
        ),
        (
            [_line("U1", config="office"), _line("U2")],
            "line 2: field config: None here, 'office' on the first line",
        ),
        (
            [_line("U1", narrated_item="the target")],
            "line 1: field narrated_item: 'the target', expected one of",
        ),
        (
            [_line("U1", narrated_item="target"), _line("U2", narrated_item="top_ranked")],
            "line 2: field narrated_item: 'top_ranked' here, 'target' on the first line",
        ),
        ([], "no predictions in the file"),
    ],
)
def test_bad_files_name_the_line(tmp_path, lines, message):
    path = write_lines(tmp_path / "p.jsonl", lines)
    with pytest.raises(PredictionFormatError, match=message.replace("(", r"\(")):
        read_predictions(path)


def test_written_atomically(tmp_path):
    path = tmp_path / "deep" / "p.jsonl"
    write_predictions(path, ["U1"], narratives={"user_profile": ["é"]})
    assert json.loads(path.read_text(encoding="utf-8"))["narratives"]["user_profile"] == "é"
    assert [p.name for p in path.parent.iterdir()] == ["p.jsonl"]


def test_a_swapped_user_is_reported_at_its_line_not_as_missing(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [_line("U1"), "", _line("U9"), _line("U3")])
    predictions = read_predictions(path)
    assert predictions.lines == [1, 3, 4]
    with pytest.raises(
        PredictionFormatError, match=r"p.jsonl, line 3: user 'U9' is not in office test$"
    ):
        predictions.for_users(["U1", "U2", "U3"], where="office test")


def test_a_ranked_item_outside_the_catalog_is_refused_at_its_line(tmp_path):
    catalog = {f"I{i}" for i in range(20)}
    lines = [_line("U1"), _line("U2", ranked_items=RANKED[:4] + ["B0OTHER"] + RANKED[5:])]
    predictions = read_predictions(write_lines(tmp_path / "p.jsonl", lines))
    with pytest.raises(
        PredictionFormatError,
        match=r"line 2: field ranked_items: item 'B0OTHER' \(position 5\) is not in the office "
        r"catalog of 20 items$",
    ):
        predictions.check_catalog(catalog, "office")
    predictions.check_catalog(catalog | {"B0OTHER"}, "office")  # accepted once it is there


def test_a_file_for_another_category_is_named_as_such(tmp_path):
    other = [f"C{i}" for i in range(10)]
    lines = [_line(f"U{u}", ranked_items=other) for u in range(3)]
    predictions = read_predictions(write_lines(tmp_path / "p.jsonl", lines))
    with pytest.raises(
        PredictionFormatError,
        match="line 1: .* 30 of the file's 30 ranked items are not: the file looks made for "
        "another category",
    ):
        predictions.check_catalog(RANKED, "office")


@pytest.mark.parametrize(
    "users, ranked, narratives, message",
    [
        (["U1"], [RANKED[:5]], None, "user 'U1': field ranked_items: 5 items, at least 10"),
        (["U1"], None, {"bogus": ["a"]}, "user 'U1': field narratives: unknown kind 'bogus'"),
        (["U1"], None, {"user_profile": []}, "narratives.user_profile: 0 entries for 1 users"),
        (["U1"], [RANKED, RANKED], None, "ranked_items: 2 entries for 1 users"),
        (["U1", "U1"], [RANKED, RANKED], None, "user 'U1': user 'U1' already predicted on line 1"),
        (["U1"], [RANKED + ["I3"]], None, r"an item id is repeated \('I3'\)"),
        (
            ["U1"],
            None,
            {"user_profile": [None]},
            "field narratives.user_profile: expected a string",
        ),
        ([], None, None, "no predictions in the file"),
        (["U1"], None, {"user_profile": ["\ud83d"]}, "user 'U1': a text is not valid Unicode"),
    ],
)
def test_what_the_reader_would_refuse_is_not_written(tmp_path, users, ranked, narratives, message):
    path = tmp_path / "p.jsonl"
    with pytest.raises(ValueError, match=message):
        write_predictions(path, users, ranked, narratives)
    assert not path.exists()


def test_gzip_a_byte_order_mark_and_other_encodings(tmp_path):
    text = "".join(json.dumps(_line(f"U{i}")) + "\r\n" for i in range(3))
    (tmp_path / "p.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    assert read_predictions(tmp_path / "p.jsonl.gz").user_ids == ["U0", "U1", "U2"]
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert read_predictions(tmp_path / "bom.jsonl").user_ids == ["U0", "U1", "U2"]
    latin = text.replace("p U1", "p \u00e9").encode("latin-1")
    (tmp_path / "latin.jsonl").write_bytes(latin)
    with pytest.raises(PredictionFormatError, match=r"latin.jsonl, line 2: not UTF-8 text"):
        read_predictions(tmp_path / "latin.jsonl")


def test_a_gzip_file_cut_short_or_damaged_is_named(tmp_path):
    text = "".join(json.dumps(_line(f"U{i}")) + "\n" for i in range(200))
    packed = gzip.compress(text.encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(PredictionFormatError, match=r"cut.jsonl.gz, line \d+: the file is damaged"):
        read_predictions(tmp_path / "cut.jsonl.gz")
    damaged = bytearray(packed)
    damaged[-6] ^= 0xFF  # the checksum
    (tmp_path / "crc.jsonl.gz").write_bytes(bytes(damaged))
    with pytest.raises(PredictionFormatError, match=r"crc.jsonl.gz, line \d+: the file is damaged"):
        read_predictions(tmp_path / "crc.jsonl.gz")


def test_a_file_made_for_another_config_or_split_is_refused(tmp_path):
    path = tmp_path / "p.jsonl"
    write_predictions(path, ["U1"], [RANKED], config="office", split="validation")
    predictions = read_predictions(path)
    assert (predictions.config, predictions.split) == ("office", "validation")
    predictions.check_made_for("office", "validation")
    with pytest.raises(PredictionFormatError, match="made for office validation, not office test"):
        predictions.check_made_for("office", "test")
    with pytest.raises(PredictionFormatError, match="field config: the file was made for office"):
        predictions.check_made_for("office_no_critique", "validation")
    write_predictions(path, ["U1"], [RANKED])  # a file that does not say is scored as it is
    read_predictions(path).check_made_for("office", "test")


def test_the_narrated_item_is_written_and_read_back(tmp_path):
    path = tmp_path / "p.jsonl"
    texts = {"user_profile": ["a", "b"]}
    write_predictions(path, ["U1", "U2"], narratives=texts, narrated_item="target")
    predictions = read_predictions(path)
    assert predictions.narrated_item == "target"
    assert predictions.for_users(["U2", "U1"]).narrated_item == "target"
    write_predictions(path, ["U1", "U2"], narratives=texts)
    assert read_predictions(path).narrated_item is None
