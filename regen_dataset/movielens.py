"""MovieLens-100k in the REGEN release format: a real, external check for the recommenders.

`regen dataset movielens --source FOLDER --out movielens.jsonl` reads either the original files
(`u.data`, tab-separated `user item rating timestamp`; `u.item`, `|`-separated with 19 genre flags)
or the atomic files RecBole ships (`ml-100k.inter`, `ml-100k.item`), and writes one release line
per user: their ratings in time order (ties keep the file's order), the movie titles, the genres as
the second category level under "Movies", no critiques and no narratives. Build it into a folder
of its own under a REGEN category name, which only names the configs:

    regen dataset build --source office=movielens.jsonl --out movielens
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from regen_dataset.files import atomic_open

ML_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip


class MovieLensFormatError(ValueError):
    def __init__(self, path: Path, line: int, message: str):
        super().__init__(f"{path}, line {line}: {message}")


@dataclass
class Movie:
    title: str
    genres: list[str]
    year: str


def find_files(folder: str | os.PathLike) -> tuple[str, Path, Path]:
    """("original" | "atomic", ratings file, items file) found in a folder (searched below too)."""
    folder = Path(folder)
    for kind, ratings, items in (
        ("original", "u.data", "u.item"),
        ("atomic", "ml-100k.inter", "ml-100k.item"),
    ):
        found = sorted(folder.rglob(ratings))
        if found and (found[0].parent / items).exists():
            return kind, found[0], found[0].parent / items
    raise FileNotFoundError(
        f"no MovieLens-100k files under {folder}: expected u.data and u.item (the original "
        "archive) or ml-100k.inter and ml-100k.item (RecBole's atomic files)"
    )


def read_movies(kind: str, path: Path) -> dict[str, Movie]:
    movies = {}
    if kind == "original":
        with open(path, encoding="latin-1", newline="") as handle:
            for number, row in enumerate(csv.reader(handle, delimiter="|"), start=1):
                if not row:
                    continue
                if len(row) != 5 + len(ML_GENRES):
                    raise MovieLensFormatError(path, number, f"expected 24 fields, got {len(row)}")
                flags = row[5:]
                genres = [g for g, flag in zip(ML_GENRES, flags, strict=True) if flag == "1"]
                movies[row[0]] = Movie(row[1].strip(), genres, row[2][-4:])
        return movies
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [name.partition(":")[0] for name in next(reader)]
        for column in ("item_id", "movie_title"):
            if column not in header:
                raise MovieLensFormatError(path, 1, f"the header lacks {column}")
        for row in reader:
            if not row:
                continue
            values = dict(zip(header, row, strict=False))
            for column in ("item_id", "movie_title"):
                if column not in values:
                    raise MovieLensFormatError(
                        path,
                        reader.line_num,
                        f"field {column} is missing: the row has {len(row)} of the header's "
                        f"{len(header)} fields",
                    )
            genres = values.get("class", "").split()
            movies[values["item_id"]] = Movie(
                values["movie_title"].strip(), genres, values.get("release_year", "")
            )
    return movies


RATING_COLUMNS = ("user_id", "item_id", "rating", "timestamp")


def read_ratings(kind: str, path: Path) -> dict[str, list[tuple[int, int, str, int]]]:
    """user -> [(timestamp, line, item, rating)] in file order."""
    users: dict[str, list] = defaultdict(list)
    with open(path, encoding="utf-8", newline="") as handle:
        lines = iter(handle)
        start, columns = 1, (0, 1, 2, 3)  # u.data: user, item, rating, timestamp
        if kind == "atomic":  # the columns its header names (`user_id:token`, ...), in any order
            header = [name.partition(":")[0].strip() for name in next(lines, "").split("\t")]
            missing = [column for column in RATING_COLUMNS if column not in header]
            if missing:
                raise MovieLensFormatError(path, 1, f"the header lacks {', '.join(missing)}")
            start, columns = 2, tuple(header.index(column) for column in RATING_COLUMNS)
        for number, line in enumerate(lines, start=start):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) <= max(columns):
                raise MovieLensFormatError(path, number, "expected user, item, rating, timestamp")
            user, item, rating, timestamp = (fields[column].strip() for column in columns)
            try:
                rating_value, time_value = float(rating), int(float(timestamp))
            except (ValueError, OverflowError):  # OverflowError: an infinite timestamp
                raise MovieLensFormatError(
                    path, number, f"rating {rating!r} or timestamp {timestamp!r} is not a number"
                ) from None
            if not 1 <= rating_value <= 5 or rating_value != int(rating_value):  # nan fails first
                raise MovieLensFormatError(path, number, f"rating {rating!r} is not 1..5")
            users[user].append((time_value, number, item, int(rating_value)))
    if not users:
        raise MovieLensFormatError(path, start, "no ratings in the file")
    return users


def release_lines(folder: str | os.PathLike, stats: dict | None = None) -> Iterator[dict]:
    """One release-format user per MovieLens user, in user-id order. `stats["tied_last"]`
    counts the users whose last two ratings share a second: which of the two is held out as
    the test target then follows the file's order, not time."""
    kind, ratings_path, items_path = find_files(folder)
    movies = read_movies(kind, items_path)
    users = read_ratings(kind, ratings_path)
    if stats is not None:
        stats["tied_last"] = sum(
            len(ratings) > 1 and sorted(ratings)[-1][0] == sorted(ratings)[-2][0]
            for ratings in users.values()
        )
    for user in sorted(users, key=_natural):
        history = []
        for timestamp, line, item, rating in sorted(users[user]):
            movie = movies.get(item)
            if movie is None:
                raise MovieLensFormatError(
                    ratings_path, line, f"movie {item} is not in {items_path.name}"
                )
            history.append(
                {
                    "item": {
                        "asin": f"ML{item}",
                        "title": movie.title,
                        "category": " - ".join(["Movies", ", ".join(movie.genres) or "unknown"]),
                        "description": f"Released in {movie.year}." if movie.year else "",
                        "price": 0.0,
                    },
                    "review": {"summary": "", "rating": rating, "text": "", "timestamp": timestamp},
                }
            )
        yield {"reviewer_id": f"ML{user}", "purchase_history": history}


def write_movielens(
    folder: str | os.PathLike, out: str | os.PathLike, stats: dict | None = None
) -> int:
    """Convert and write atomically; returns the number of users (`stats`: see
    `release_lines`)."""
    import json

    count = 0
    with atomic_open(out) as handle:
        for line in release_lines(folder, stats):
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            count += 1
    return count


def _natural(user: str):
    return (0, int(user), "") if user.isdigit() else (1, 0, user)
