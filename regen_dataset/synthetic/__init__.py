"""Seeded synthetic REGEN data in Google's release format. SYNTHETIC: no real user is in it.

It exists so that everything runs without the Kaggle download: tests, the demo, and benchmarks at
the real sizes (`PAPER_SIZES`, from the REGEN paper's Table 1). It is built to behave like the
Amazon review data REGEN comes from, so that a model benchmark on it means something:
- `catalog`: category paths five levels deep (root first), invented brands, colours, sizes,
  materials and styles, realistic text lengths (title ~80 characters, description ~400, review
  ~300: about 1 KB per interaction), and long-tailed popularity (a power law over leaves and over
  items within a leaf);
- `shoppers`: tastes that drift, and sequences with repeat purchases of consumables, items bought
  to go with the previous one, refinements within a category, and ratings that follow how well
  an item fits the taste; timestamps between 2009 and October 2018;
- `reviews`: reviews that name the shopper's uses, and critiques that name one or two of the
  attributes that change, sometimes vaguely or by what was disliked, a few noisy; only between
  adjacent items whose category paths agree on at least `SIMILAR_LEVELS` levels, and the
  sentinel everywhere else;
- `narratives`: narratives and profiles grounded in the user's own purchases and reviews, in
  varied wording, and auto-rater scores under the release's keys.
Every line carries a top-level `"synthetic": true`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
from collections.abc import Iterator

from tqdm.auto import tqdm

from regen_dataset.files import atomic_open
from regen_dataset.schema import CRITIQUE_SENTINEL, RATER_ATTRIBUTES, similar_adjacent
from regen_dataset.synthetic.catalog import (
    Catalog,
    Item,
    check_catalog,
    leaf_paths,
    synthetic_user_id,
)
from regen_dataset.synthetic.narratives import narratives, rater_scores
from regen_dataset.synthetic.reviews import critique, review
from regen_dataset.synthetic.shoppers import make_shopper, purchases

__all__ = ["PAPER_SIZES", "Catalog", "Item", "generate_release", "write_release"]

PAPER_SIZES = {"office": (89_489, 27_887), "clothing": (1_168_735, 376_847)}  # users, items
MEAN_LENGTH = {"office": 7.86, "clothing": 9.21}  # interactions per user, the paper's Table 1
_RATED_GROUPS = {group: RATER_ATTRIBUTES[group] for group in ("user", "last_purchase", "example")}
_RATED_GROUPS["endorsement"] = RATER_ATTRIBUTES["endorsement"]


def _user_line(catalog: Catalog, user_index: int, seed: int) -> str:
    rng = random.Random(f"user:{seed}:{user_index}")
    shopper = make_shopper(catalog, rng)
    length = min(50, int(rng.expovariate(1 / (MEAN_LENGTH[catalog.category] - 4.5))) + 5)
    bought = purchases(catalog, shopper, length, rng)
    entries, uses = [], []
    previous = None
    for purchase in bought:
        item = purchase.item
        path = catalog.leaves[item.leaf].path
        text = CRITIQUE_SENTINEL
        if previous is not None and similar_adjacent(catalog.leaves[previous.leaf].path, path):
            text = critique(catalog, previous, item, rng)
        summary, body, use = review(catalog, item, purchase.rating, shopper, rng)
        uses.append(use)
        review_json = json.dumps(
            {
                "summary": summary,
                "rating": purchase.rating,
                "text": body,
                "timestamp": purchase.timestamp,
            }
        )
        entries.append(
            f'{{"item": {item.json}, "review": {review_json}, "critique": {json.dumps(text)}}}'
        )
        previous = item
    tail = narratives(catalog, bought, uses, shopper, rng)
    tail["metadata"] = rater_scores(bought, rng, _RATED_GROUPS)
    reviewer_id = synthetic_user_id(catalog.category, user_index)
    head = json.dumps({"reviewer_id": reviewer_id, "synthetic": True})[:-1]
    return f'{head}, "purchase_history": [{", ".join(entries)}], {json.dumps(tail)[1:]}'


def default_items(category: str, n_users: int) -> int:
    """The paper's items per user, with two items per leaf at least."""
    paper_users, paper_items = PAPER_SIZES[category]
    return max(2 * len(leaf_paths(category)), round(paper_items * n_users / paper_users))


def generate_release(
    category: str, n_users: int, *, n_items: int | None = None, seed: int = 0
) -> Iterator[str]:
    """Release-format JSONL lines (no newline) for `n_users` synthetic users."""
    catalog = Catalog(category, n_items or default_items(category, n_users), seed)
    for user_index in range(n_users):
        yield _user_line(catalog, user_index, seed)


_worker_catalog: Catalog | None = None
_CHUNK_USERS = 1_000


def _start_worker(category: str, n_items: int, seed: int) -> None:
    global _worker_catalog
    _worker_catalog = Catalog(category, n_items, seed)


def _chunk(task: tuple[int, int, int]) -> str:
    start, stop, seed = task
    return "".join(_user_line(_worker_catalog, i, seed) + "\n" for i in range(start, stop))


def write_release(
    path: str | os.PathLike,
    category: str,
    n_users: int,
    *,
    n_items: int | None = None,
    seed: int = 0,
    progress: bool = False,
    workers: int = 1,
) -> None:
    """Write synthetic users to `path` atomically; `workers` processes write the same lines.

    Every user is seeded by its index, so the file is the same whatever the number of workers.
    """
    n_items = n_items or default_items(category, n_users)
    check_catalog(category, n_items)  # here: a worker failing to start is started again
    bar = tqdm(total=n_users, disable=not progress, desc=f"synthetic {category}", unit="user")
    with atomic_open(path) as handle, bar:
        if workers <= 1:
            for line in generate_release(category, n_users, n_items=n_items, seed=seed):
                handle.write(line)
                handle.write("\n")
                bar.update()
            return
        tasks = [
            (start, min(start + _CHUNK_USERS, n_users), seed)
            for start in range(0, n_users, _CHUNK_USERS)
        ]
        with multiprocessing.Pool(
            workers, initializer=_start_worker, initargs=(category, n_items, seed)
        ) as pool:
            for (start, stop, _), text in zip(tasks, pool.imap(_chunk, tasks), strict=True):
                handle.write(text)
                bar.update(stop - start)
