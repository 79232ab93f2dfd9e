"""Realism figures of a built folder, checked by hand on a tiny release file."""

import json
from pathlib import Path

import datasets
import pytest

from regen_dataset.export import build_folder
from regen_dataset.schema import CRITIQUE_SENTINEL
from regen_dataset.stats import (
    CRITIQUE_RATIOS,
    ShapeStats,
    config_stats,
    configs_in_folder,
    describe_folder,
    gini,
    sentence_shape,
)
from training.cli import main

REAL = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real"
if not REAL.exists():
    REAL = Path("/work/shared/fixtures/real")

LEAF_1 = "Office Products - Paper - Notebooks - Spiral - Small"
LEAF_2 = "Office Products - Paper - Notebooks - Spiral - Large"  # 4 levels shared with LEAF_1
LEAF_3 = "Office Products - Paper - Notebooks - Legal Pads - Yellow"  # 3 levels shared
LEAF_4 = "Office Products - Paper - Notebooks - Legal Pads - White"
LEAF_5 = "Office Products - Electronics - Printers - Laser - Mono"


def _entry(asin: str, category: str, critique: str = CRITIQUE_SENTINEL, day: int = 0) -> dict:
    return {
        "item": {
            "asin": asin,
            "title": f"Item {asin}",
            "category": category,
            "description": "d",
            "price": 1.0,
        },
        "review": {"summary": "s", "rating": 5, "text": "t", "timestamp": 1_400_000_000 + day},
        "critique": critique,
    }


USERS = [
    {
        "reviewer_id": "A",
        "purchase_history": [
            _entry("X1", LEAF_1, day=1),
            _entry("X2", LEAF_2, "smaller please", day=2),  # similar, critiqued
            _entry("X3", LEAF_5, day=3),
            _entry("X1", LEAF_1, day=4),  # a repeat purchase
        ],
        "last_purchase": {"reason": "I like it. It works.", "explanation": "x", "endorsement": "y"},
        "user": {"profile": "Thrifty buyer", "brief_summary": "b", "long_summary": "l"},
    },
    {
        "reviewer_id": "B",
        "purchase_history": [
            _entry("X1", LEAF_1, day=1),
            _entry("X4", LEAF_1, "in blue", day=2),  # similar, critiqued
            _entry("X5", LEAF_3, day=3),  # three levels only: not similar
            _entry("X6", LEAF_4, day=4),  # similar, but no critique
            _entry("X7", LEAF_5, "anything cheaper?", day=5),  # a critique off the rule
        ],
        "last_purchase": {"reason": "I like that. Fine.", "explanation": "x", "endorsement": "y"},
        "user": {"profile": "2 kids, 1 dog", "brief_summary": "b", "long_summary": "l"},
    },
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    work = tmp_path_factory.mktemp("stats")
    source = work / "office_tiny.jsonl"
    source.write_text("".join(json.dumps(user) + "\n" for user in USERS))
    out = work / "built"
    build_folder({"office": [str(source)]}, out, progress=False)
    return out


def test_realism_figures_by_hand(folder):
    stats = config_stats(datasets.load_dataset(str(folder), "office"), "office")
    real = stats.realism
    assert stats.users == 2 and stats.items == 7 and real.interactions == 9
    # Item counts: X1 three times, six items once. Mean absolute difference / (2 * mean):
    # 6 items differ from X1 by 2, in both orders: 24 / (2 * 7**2 * 9/7) = 0.1905.
    assert real.gini == pytest.approx(24 / 126)
    assert real.top1_share == pytest.approx(3 / 9) and real.top10_share == pytest.approx(3 / 9)
    assert real.repeat_share == pytest.approx(1 / 9)
    assert real.adjacent_pairs == 7 and real.similar_pairs == 3
    # Two critiques in histories and one as the test row's steering critique (X7).
    assert real.critiques == 3 and real.critiques_off_rule == 1
    assert real.critiques_per_interaction == pytest.approx(3 / 9)
    assert real.critiques_per_similar_pair == pytest.approx(3 / 3)
    reasons = real.shapes["purchase_reason"]
    assert reasons.sentences == 4 and reasons.distinct == 4
    assert real.shapes["user_profile"].sentences == 2


def test_no_critique_config_counts_no_critiques(folder):
    stats = config_stats(
        datasets.load_dataset(str(folder), "office_no_critique"), "office_no_critique"
    )
    assert stats.realism.critiques == 0 and stats.realism.similar_pairs == 3


def test_report_states_the_two_critique_ratios_once(folder, tmp_path):
    text = describe_folder(folder, configs_in_folder(folder), str(tmp_path / "plot.png"))
    assert text.count(CRITIQUE_RATIOS) == 1 and text.startswith(CRITIQUE_RATIOS)
    assert "per interaction" in text and "per similar pair" in text
    assert "Gini of item counts 0.19" in text and "repeat purchases: 11.1%" in text
    assert (tmp_path / "plot.png").stat().st_size > 0


def test_a_catalog_config_is_a_clear_error(folder, tmp_path, capsys):
    with pytest.raises(ValueError, match="office_items is the catalog of office"):
        describe_folder(folder, ["office_items"], None)
    plot = tmp_path / "plot.png"
    command = ["dataset", "report", "--folder", str(folder), "--config", "office_items"]
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--plot", str(plot)])
    assert exit_info.value.code == 1 and not plot.exists()
    error = capsys.readouterr().err
    assert error.startswith("regen: error: office_items is the catalog of office")
    assert "Traceback" not in error


def test_configs_in_folder_keeps_split_configs_that_exist(folder, tmp_path):
    assert configs_in_folder(folder) == ["office", "office_no_critique"]
    (tmp_path / "data" / "office_items").mkdir(parents=True)
    (tmp_path / "data" / "clothing").mkdir()
    assert configs_in_folder(tmp_path) == ["clothing"]  # catalogs are not split configs


def test_gini_edges():
    assert gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)  # (n - 1) / n when one takes all
    assert gini([]) == 0.0


def test_sentence_shape_is_the_opening_three_words():
    assert sentence_shape("The customer's positive review highlights comfort.") == (
        "the customer's positive"
    )
    assert sentence_shape("2 packs, 12 pens!") == "0 packs 00"
    assert ShapeStats.of(["One two three four. One two three five.", "Other start here."]) == (
        ShapeStats(sentences=3, distinct=2, top10_share=1.0)
    )


def test_shapes_on_real_summaries():
    path = REAL / "regen_office_user_flattened.json"
    if not path.exists():
        pytest.skip("the real fixtures live in ../shared, absent here")
    # The fixture is one real user, flattened to a row per purchase: one long summary.
    (summary,) = {row["long_summary"] for row in json.loads(path.read_text())}
    # "This customer's purchase ...", "They have purchased ...", "They are drawn ...",
    # "Their purchase of erasers ...", "Their purchase of a magnet ...": four shapes, five sentences.
    assert ShapeStats.of([summary]) == ShapeStats(sentences=5, distinct=4, top10_share=1.0)
