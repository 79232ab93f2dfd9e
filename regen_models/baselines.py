"""Baselines that need no training, to anchor every REGEN table.

- most popular: the items bought most often in the train split, the same list for every user;
- random: a seeded random ranking of the catalog per user;
- nearest-neighbour narrative: for each user, the reference narrative of the most similar other
  user, a user being the mean sentence embedding of their history's item titles.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow.compute as pc

from regen_models.metrics import embed


def _item_ids(split) -> list[str]:
    """Item ids of every interaction in a split (history and target), with repeats."""
    table = split.data.table
    history = pc.list_flatten(table.column("history")).combine_chunks().field("item_id")
    return (
        history.to_pylist() + table.column("target").combine_chunks().field("item_id").to_pylist()
    )


def catalog(dataset) -> list[str]:
    """Every item id seen in any split of a dataset dict, sorted."""
    return sorted({item for split in dataset.values() for item in _item_ids(split)})


def most_popular(train_split, n_users: int, k: int = 100) -> list[list[str]]:
    counts = Counter(_item_ids(train_split))
    top = [item for item, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]
    return [list(top) for _ in range(n_users)]


def random_ranking(items: list[str], n_users: int, k: int = 100, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    k = min(k, len(items))
    return [
        [items[i] for i in rng.choice(len(items), size=k, replace=False)] for _ in range(n_users)
    ]


def user_vectors(split, encoder=None, cache: dict | None = None) -> np.ndarray:
    """A user as the mean embedding of their history's item titles (each title encoded once)."""
    histories = [[item["title"] or "" for item in history] for history in split["history"]]
    titles = sorted({title for history in histories for title in history})
    index = {title: row for row, title in enumerate(titles)}
    title_vectors = embed(titles, encoder, cache)
    users = np.stack(
        [title_vectors[[index[t] for t in history]].mean(axis=0) for history in histories]
    )
    return users / np.maximum(np.linalg.norm(users, axis=1, keepdims=True), 1e-12)


def nearest_neighbour_narratives(
    query_split, pool_split, kinds, encoder=None
) -> dict[str, list[str]]:
    """For each query user and kind, the pool's reference narrative of the most similar user.

    A user is never their own neighbour, so the pool may be the evaluated split itself
    (leave-one-user-out) when the train split carries no narratives.
    """
    cache: dict = {}
    similarity = (
        user_vectors(query_split, encoder, cache) @ user_vectors(pool_split, encoder, cache).T
    )
    same_user = (
        np.asarray(query_split["user_id"])[:, None] == np.asarray(pool_split["user_id"])[None, :]
    )
    similarity[same_user] = -np.inf
    pool_narratives = pool_split["narratives"]
    out = {}
    for kind in kinds:
        has_reference = np.array([n[kind] is not None for n in pool_narratives])
        if not has_reference.any():
            raise ValueError(f"the pool split has no {kind} narratives to borrow")
        best = np.where(has_reference[None, :], similarity, -np.inf).argmax(axis=1)
        out[kind] = [pool_narratives[index][kind] for index in best]
    return out
