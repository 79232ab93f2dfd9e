"""benchmarks/bench_recbole.py's time-order rewrite: RecBole must see our converter's order."""

import importlib.util
from pathlib import Path

import pytest

from regen_dataset.movielens import release_lines

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_recbole.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_recbole", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # stdlib only at import: no recbole needed here
    return module


HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
# User 7's last two ratings are one second apart and filed out of time order: the case RecBole's
# float32 scaled timestamps turn into a tie. User 9 has a true tie, kept in file order.
RATINGS = [
    ("7", "1", "4", "889181240"),
    ("9", "2", "5", "874724710"),
    ("7", "3", "2", "889181248"),
    ("7", "2", "5", "889181247"),
    ("9", "3", "1", "893286638"),
    ("9", "1", "3", "893286638"),
]


def test_ranks_follow_time_then_file_order(bench):
    lines = [HEADER, *("\t".join(row) for row in RATINGS)]
    ranked = bench.rank_timestamps(lines)
    assert ranked[0] == HEADER
    rows = [line.split("\t") for line in ranked[1:]]
    assert [row[3] for row in rows] == ["0", "1", "2", "3", "4", "5"]
    assert [(row[0], row[1]) for row in rows] == [
        ("9", "2"), ("7", "1"), ("7", "2"), ("7", "3"), ("9", "3"), ("9", "1"),
    ]  # fmt: skip


def test_ranked_order_is_our_converters_order(bench, tmp_path):
    lines = [HEADER, *("\t".join(row) for row in RATINGS)]
    (tmp_path / "ml-100k.inter").write_text("\n".join(lines) + "\n")
    (tmp_path / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation\n2\tGoldenEye\t1995\tAction\n3\tHeat\t1995\tCrime\n"
    )
    ours = {
        line["reviewer_id"].removeprefix("ML"): [
            step["item"]["asin"].removeprefix("ML") for step in line["purchase_history"]
        ]
        for line in release_lines(tmp_path)
    }
    by_user: dict[str, list[tuple[int, str]]] = {}
    for line in bench.rank_timestamps(lines)[1:]:
        user, item, _, rank = line.split("\t")
        by_user.setdefault(user, []).append((int(rank), item))
    recbole_order = {user: [item for _, item in sorted(rows)] for user, rows in by_user.items()}
    assert recbole_order == ours == {"7": ["1", "2", "3"], "9": ["2", "3", "1"]}


def test_a_file_without_timestamps_is_refused(bench):
    with pytest.raises(ValueError, match="no timestamp column"):
        bench.rank_timestamps(["user_id:token\titem_id:token", "1\t2"])
    with pytest.raises(ValueError, match="line 2: no numeric timestamp"):
        bench.rank_timestamps([HEADER, "1\t2\t3\tsoon"])
