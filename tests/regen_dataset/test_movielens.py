import json

import datasets
import pytest
import yaml

from regen_dataset.export import build_folder
from regen_dataset.movielens import (
    ML_GENRES,
    MovieLensFormatError,
    release_lines,
    write_movielens,
)


def _flags(*genres):
    return "|".join("1" if g in genres else "0" for g in ML_GENRES)


def write_original(folder, ratings, movies: int = 3):
    folder.mkdir(parents=True, exist_ok=True)
    items = [
        f"1|Toy Story (1995)|01-Jan-1995||http://x|{_flags('Animation', 'Comedy')}",
        f"2|GoldenEye (1995)|01-Jan-1995||http://x|{_flags('Action', 'Thriller')}",
        f"3|Café Society (1995)|01-Jan-1995||http://x|{_flags('Drama')}",
    ]
    items += [
        f"{i}|Movie {i} (1996)|01-Jan-1996||http://x|{_flags('Drama')}"
        for i in range(4, movies + 1)
    ]
    (folder / "u.item").write_bytes("\n".join(items).encode("latin-1"))
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings))
    return folder


RATINGS = [(7, 2, 4, 881250950), (7, 1, 5, 881250949), (7, 3, 3, 881250950), (12, 1, 2, 879000000)]


def test_original_files_become_release_lines(tmp_path):
    lines = list(release_lines(write_original(tmp_path / "ml-100k", RATINGS)))
    assert [line["reviewer_id"] for line in lines] == ["ML7", "ML12"]
    history = lines[0]["purchase_history"]
    # Time order; the tie at 881250950 keeps the file's order (item 2, then 3).
    assert [h["item"]["asin"] for h in history] == ["ML1", "ML2", "ML3"]
    assert history[0]["item"]["title"] == "Toy Story (1995)"
    assert history[0]["item"]["category"] == "Movies - Animation, Comedy"
    assert history[2]["item"]["title"] == "Café Society (1995)"  # latin-1 decoded
    assert history[1]["review"] == {
        "summary": "", "rating": 4, "text": "", "timestamp": 881250950
    }  # fmt: skip
    assert "critique" not in history[0] and "user" not in lines[0]


def test_recbole_atomic_files(tmp_path):
    folder = tmp_path / "recbole" / "ml-100k"
    folder.mkdir(parents=True)
    (folder / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's Comedy\n2\tGoldenEye\t1995\tAction Thriller\n"
    )
    (folder / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "5\t2\t3\t881250949\n5\t1\t4\t881250940\n"
    )
    (line,) = release_lines(tmp_path)
    assert [h["item"]["asin"] for h in line["purchase_history"]] == ["ML1", "ML2"]
    assert line["purchase_history"][0]["item"]["category"] == (
        "Movies - Animation, Children's, Comedy"
    )
    # The header names the columns, in whatever order they come.
    (folder / "ml-100k.inter").write_text(
        "timestamp:float\trating:float\titem_id:token\tuser_id:token\n"
        "881250949\t3\t2\t5\n881250940\t4\t1\t5\n"
    )
    assert list(release_lines(tmp_path)) == [line]


def test_bad_files_name_the_line(tmp_path):
    with pytest.raises(MovieLensFormatError, match=r"u.data, line 2: rating '9' is not 1..5"):
        list(release_lines(write_original(tmp_path / "a", [(1, 1, 4, 881250949), (1, 2, 9, 1)])))
    for rating, timestamp in (("nan", 1), ("inf", 1), (4, "inf")):
        with pytest.raises(MovieLensFormatError, match=r"u.data, line 1: (rating|timestamp)"):
            list(release_lines(write_original(tmp_path / "nan", [(1, 1, rating, timestamp)])))
    with pytest.raises(MovieLensFormatError, match="line 1: movie 99 is not in u.item"):
        list(release_lines(write_original(tmp_path / "b", [(1, 99, 4, 881250949)])))
    with pytest.raises(FileNotFoundError, match="no MovieLens-100k files"):
        list(release_lines(tmp_path / "c"))
    atomic = tmp_path / "d"
    atomic.mkdir()
    (atomic / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n5\t1\t4\t881250940\n"
    )
    (atomic / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation\n2\n"
    )
    with pytest.raises(
        MovieLensFormatError,
        match=r"ml-100k.item, line 3: field movie_title is missing: the row has 1 of the header's 4",
    ):
        list(release_lines(atomic))
    (atomic / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    )
    for inter, message in (
        ("", "line 1: the header lacks user_id, item_id, rating, timestamp"),
        ("user_id:token\titem_id:token\trating:float\n", "line 1: the header lacks timestamp"),
        ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n", "no ratings"),
    ):
        (atomic / "ml-100k.inter").write_text(inter)
        with pytest.raises(MovieLensFormatError, match=message):
            list(release_lines(atomic))


def test_builds_and_loads_like_regen(tmp_path, capsys):
    # 16 movies: the baselines rank at least the 10 that a prediction file needs.
    ratings = [
        (u, 1 + (6 * u + k) % 16, 1 + k % 5, 880000000 + 1000 * k)
        for u in range(1, 6)
        for k in range(6)
    ]
    out = tmp_path / "movielens.jsonl"
    assert write_movielens(write_original(tmp_path / "ml", ratings, movies=16), out) == 5
    assert json.loads(out.read_text().splitlines()[0])["reviewer_id"] == "ML1"
    build_folder({"office": [str(out)]}, tmp_path / "folder", progress=False)
    rows = datasets.load_dataset(str(tmp_path / "folder"), "office")
    assert rows["test"].num_rows == 5 and len(rows["test"][0]["history"]) == 5
    assert rows["test"][0]["critique"] is None
    items = datasets.load_dataset(str(tmp_path / "folder"), "office_items")["train"]
    assert sorted(items["item_id"], key=lambda i: int(i[2:])) == [f"ML{i}" for i in range(1, 17)]
    card = (tmp_path / "folder" / "README.md").read_text()
    assert (
        "- `office` has no critiques (`office` and `office_no_critique` hold the same rows) "
        in card
    )
    assert "and no narratives: its source lines carry none." in card
    header = yaml.safe_load(card.split("---\n")[1])
    descriptions = {entry["config_name"]: entry["description"] for entry in header["configs"]}
    assert descriptions["office"].startswith(
        "REGEN office, no critiques in its source (the rows of office_no_critique)"
    )
    assert descriptions["office_no_critique"].startswith("REGEN office, without critiques")
    from training.evaluate import write_baselines

    runs = write_baselines(tmp_path / "folder", "office", "test", str(tmp_path / "predictions"))
    assert [model for model, _, _ in runs] == ["most_popular", "random"]
    assert "office test has no narratives: nearest_neighbour has none to borrow" in (
        capsys.readouterr().out
    )


def test_cli(tmp_path, capsys):
    from training import cli

    source = write_original(tmp_path / "ml", RATINGS)
    cli.main(["dataset", "movielens", "--source", str(source), "--out", str(tmp_path / "m.jsonl")])
    out = capsys.readouterr().out
    assert "wrote 2 MovieLens users" in out
    # User 7's last two ratings share a second: the file's order picks the test item.
    assert "note: 1 users' last two ratings share a second" in out
    assert "licence does not allow redistributing" in out
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 2
