import json

import pyarrow as pa
import pytest

from regen_dataset.release import read_release
from regen_dataset.schema import FEATURES, NARRATIVE_KINDS, USER_NARRATIVES
from regen_dataset.splits import SplitReport, drop_critiques, split_batch
from tests.conftest import SAMPLES, entry, user, write_lines


def _sequences(tmp_path, lines) -> pa.RecordBatch:
    return pa.concat_batches(list(read_release(write_lines(tmp_path / "office.jsonl", lines))))


def _ids(interactions):
    return [i["item_id"] for i in interactions]


def test_leave_one_out(tmp_path):
    line = user(
        "U",
        0,
        purchase_history=[
            entry(f"I{i}", 1_400_000_000 + i, critique=f"c{i}" if i else None) for i in range(6)
        ],
    )
    report = SplitReport("leave_one_out")
    out = split_batch(_sequences(tmp_path, [line, user("short", 3)]), report=report)
    train, validation, test = (out[s].to_pylist() for s in ("train", "validation", "test"))
    assert out["test"].schema == FEATURES.arrow_schema
    # N = 6: train sees 4 (predicts I3), validation predicts I4 from 4, test predicts I5 from 5.
    assert _ids(train[0]["history"]) == ["I0", "I1", "I2"] and train[0]["target"]["item_id"] == "I3"
    assert (
        _ids(validation[0]["history"]) == ["I0", "I1", "I2", "I3"]
        and validation[0]["target"]["item_id"] == "I4"
    )
    assert (
        _ids(test[0]["history"]) == ["I0", "I1", "I2", "I3", "I4"]
        and test[0]["target"]["item_id"] == "I5"
    )
    # The critique that steers towards the target is an input, apart from the target (a label).
    assert test[0]["critique"] == "c5" and test[0]["target"]["critique"] is None
    assert train[0]["critique"] == "c3" and train[0]["history"][1]["critique"] == "c1"
    # Narratives: test gets the last purchase's and the user's; the others get none here.
    assert test[0]["narratives"]["product_endorsement"] == "endorsement U"
    assert test[0]["narratives"]["user_profile"] == "profile U"
    for row in (train[0], validation[0]):
        assert all(row["narratives"][kind] is None for kind in NARRATIVE_KINDS)
    # Rater scores belong to the last purchase's narratives: only the test row carries them.
    assert test[0]["rater"]["user"]["veracity"] is not None
    for row in (train[0], validation[0]):
        assert all(v is None for group in row["rater"].values() for v in group.values())
    assert (
        report.too_short == 1
        and report.users == 2
        and dict(report.rows) == {"train": 1, "validation": 1, "test": 1}
    )


def test_item_narratives_follow_their_item(tmp_path):
    history = [entry(f"I{i}", 1_400_000_000 + i, reason=f"why I{i}") for i in range(5)]
    out = split_batch(
        _sequences(tmp_path, [user("U", 0, purchase_history=history, last_purchase={})])
    )
    assert out["train"].to_pylist()[0]["narratives"]["purchase_reason"] == "why I2"
    assert out["validation"].to_pylist()[0]["narratives"]["purchase_reason"] == "why I3"
    assert out["test"].to_pylist()[0]["narratives"]["purchase_reason"] == "why I4"


def test_user_disjoint(tmp_path):
    lines = [user(f"U{i}", 2 + i % 4) for i in range(400)] + [user("one", 1)]
    report = SplitReport("user_disjoint")
    out = split_batch(_sequences(tmp_path, lines), "user_disjoint", report=report, seed=3)
    users = {split: [r["user_id"] for r in batch.to_pylist()] for split, batch in out.items()}
    assert sum(map(len, users.values())) == 400 and report.too_short == 1
    assert not set(users["train"]) & (set(users["validation"]) | set(users["test"]))
    assert 280 < len(users["train"]) < 360 and len(users["test"]) > 20
    row = out["test"].to_pylist()[0]
    assert len(row["history"]) + 1 == 2 + int(row["user_id"][1:]) % 4
    assert all(row["narratives"][kind] is not None for kind in USER_NARRATIVES)
    again = split_batch(_sequences(tmp_path, lines), "user_disjoint", seed=3)
    assert again["test"].column("user_id") == out["test"].column("user_id")
    other_seed = split_batch(_sequences(tmp_path, lines), "user_disjoint", seed=4)
    assert other_seed["test"].column("user_id") != out["test"].column("user_id")


def test_drop_critiques_changes_nothing_else(tmp_path):
    rows = split_batch(pa.concat_batches(list(read_release(SAMPLES / "office_synthetic.jsonl"))))[
        "test"
    ]
    plain = drop_critiques(rows)
    assert plain.schema == rows.schema
    before, after = rows.to_pylist(), plain.to_pylist()
    assert any(i["critique"] for r in before for i in r["history"])
    for a, b in zip(before, after, strict=True):
        assert all(i["critique"] is None for i in b["history"]) and b["critique"] is None
        for interaction in a["history"]:
            interaction["critique"] = None
        a["critique"] = None
        assert a == b


def test_no_held_out_text_reaches_an_input(tmp_path):
    """On every split, inputs hold only what the file puts before the target, texts included.

    The sample gets a user whose last line is dated before the one above it: the texts were
    written on the file's order (a critique is about the pair of adjacent lines, the last-purchase
    narratives and scores about the last line), so re-sorting by time would move them.
    """
    lines = [
        json.loads(line)
        for line in (SAMPLES / "clothing_synthetic.jsonl").read_text().splitlines()
        if line.strip()
    ]
    history = [
        entry(f"I{i}", 1_400_000_000 + 86_400 * i, critique=f"I{i - 1} to I{i}" if i else None)
        for i in range(6)
    ]
    history[5]["review"]["timestamp"] = 1_400_000_000 + 86_400 * 3 + 10
    lines.append(user("disordered", 0, purchase_history=history, synthetic=True))
    raw = {line["reviewer_id"]: line for line in lines}
    sequences = pa.concat_batches(list(read_release(write_lines(tmp_path / "c.jsonl", lines))))
    full = {u["user_id"]: u for u in sequences.to_pylist()}
    for split, batch in split_batch(sequences).items():
        for row in batch.to_pylist():
            entries = raw[row["user_id"]]["purchase_history"]
            sequence = full[row["user_id"]]["interactions"]
            position = len(row["history"])
            assert _ids(row["history"]) == [e["item"]["asin"] for e in entries[:position]]
            assert row["target"]["item_id"] == entries[position]["item"]["asin"]
            for interaction, line_entry in zip(row["history"], entries, strict=False):
                assert interaction["critique"] in (None, line_entry.get("critique"))
            assert row["critique"] in (None, entries[position].get("critique"))
            last = position == len(entries) - 1
            reason = (raw[row["user_id"]].get("last_purchase") or {}).get("reason")
            if not last:
                assert row["narratives"]["purchase_reason"] != reason or reason is None
                assert all(v is None for g in row["rater"].values() for v in g.values())
            target = dict(sequence[position], critique=None)
            assert row["history"] == sequence[:position] and row["target"] == target
            expected = {"train": 3, "validation": 2, "test": 1}[split]
            assert len(sequence) - position == expected
    assert any(row["user_id"] == "disordered" for row in batch.to_pylist())


def test_unknown_protocol(tmp_path):
    with pytest.raises(ValueError, match="unknown split protocol"):
        split_batch(_sequences(tmp_path, [user("U", 5)]), "random")
