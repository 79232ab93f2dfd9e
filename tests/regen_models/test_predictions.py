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
    with pytest.raises(PredictionFormatError, match="no prediction for 1 users of the split"):
        predictions.for_users(["U1", "U2", "U3"])
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
            "line 1: field ranked_items: an item id is repeated",
        ),
        (
            [_line("U1", ranked_items=[1] * 10)],
            "line 1: field ranked_items: expected a list of item id strings",
        ),
        (
            [_line("U1"), {"user_id": "U2", "narratives": {"user_profile": "x"}}],
            "line 2: field ranked_items: present on some lines only",
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
