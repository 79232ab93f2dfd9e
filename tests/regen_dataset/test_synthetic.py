import json
import re

from regen_dataset.release import CRITIQUE_SENTINEL, SIMILAR_LEVELS, ReadReport, read_release
from regen_dataset.synthetic import Catalog, generate_release, write_release


def test_seeded_and_deterministic():
    first = list(generate_release("clothing", 30, seed=7))
    assert first == list(generate_release("clothing", 30, seed=7))
    assert first != list(generate_release("clothing", 30, seed=8))


def test_catalog_depth_and_attributes():
    for category in ("office", "clothing"):
        catalog = Catalog(category, 2_000)
        assert len(catalog.items) == 2_000 and len({i.asin for i in catalog.items}) == 2_000
        assert all(len(item.path) >= 4 for item in catalog.items)
        assert len({i.brand for i in catalog.items}) >= 10
        assert (
            len({i.colour for i in catalog.items}) >= 8
            and len({i.size for i in catalog.items}) >= 5
        )


def test_critiques_only_between_similar_adjacent_items():
    critiqued = pairs = 0
    for line in generate_release("office", 400, seed=1):
        history = json.loads(line)["purchase_history"]
        assert history[0]["critique"] == CRITIQUE_SENTINEL
        for previous, current in zip(history, history[1:], strict=False):
            a = previous["item"]["category"].split(" - ")
            b = current["item"]["category"].split(" - ")
            similar = a[:SIMILAR_LEVELS] == b[:SIMILAR_LEVELS]
            assert (current["critique"] != CRITIQUE_SENTINEL) == similar
            pairs += 1
            if similar:
                critiqued += 1
                _check_wording(previous["item"], current["item"], current["critique"])
            assert previous["item"]["asin"] != current["item"]["asin"]
    assert 0.12 < critiqued / pairs < 0.28  # the paper reports 17.6% (Office), 18.6% (Clothing)


def _check_wording(current: dict, goal: dict, critique: str):
    """A critique names something that changes from the current item to the goal."""
    goal_words = set(re.findall(r"[a-z0-9$-]+", (goal["title"] + " " + goal["category"]).lower()))
    words = set(re.findall(r"[a-z0-9$-]+", critique.lower()))
    assert (
        words & goal_words
        or "cheaper" in critique
        or "pay more" in critique
        or "just like this" in critique
    ), critique


def test_release_format_reads_back(tmp_path):
    path = tmp_path / "clothing_synthetic.jsonl"
    write_release(path, "clothing", 200, seed=2)
    assert not list(tmp_path.glob("*.partial"))
    report = ReadReport()
    users = [u for batch in read_release(path, report=report) for u in batch.to_pylist()]
    assert len(users) == 200 and report.skipped_lines == 0 and not report.unknown_fields
    lengths = [len(u["interactions"]) for u in users]
    assert min(lengths) >= 5 and max(lengths) <= 50 and 7.5 < sum(lengths) / len(lengths) < 11
    assert report.found["last_purchase.endorsement"] == 200 and report.found["metadata.user"] == 200
    bytes_per_user = path.stat().st_size / 200
    assert 8_000 < bytes_per_user < 16_000  # realistic text lengths: about 10 KB per user
    first = users[0]["interactions"][0]
    assert 40 < len(first["title"]) < 130 and 300 < len(first["description"]) < 600
    assert 200 < len(first["review_text"]) < 450
