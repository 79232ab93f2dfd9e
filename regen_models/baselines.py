"""Baselines that need no training, to anchor every REGEN table.

- most popular: the items bought most often in the train split, the same list for every user;
- random: a seeded random ranking of the catalog per user;
- nearest-neighbour narrative: for each user, the reference narrative of the most similar other
  user, a user being the mean sentence embedding of their history's item titles.

The nearest-neighbour baseline borrows labels. It takes its references from the train split when
that split carries them (user-disjoint builds). Under leave-one-out only the evaluated split's rows
carry reference narratives, so it borrows other *test* users' references: its text scores measure
how alike the references of similar users are, not what a model could write for an unseen user.
Every table that shows its figures says so (`neighbour_note`).

The neighbour search is blockwise: memory is bounded by the block sizes, never users squared.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regen_models.items import split_item_ids
from regen_models.metrics import embed

NEAREST_NEIGHBOUR = "nearest_neighbour"  # the run name `regen eval baselines` gives it
NEIGHBOUR_BLOCK = 4096  # users per block: a [block, block] float32 tile is 64 MiB


def most_popular(train_split, n_users: int, k: int = 100) -> list[list[str]]:
    """The `k` items bought most often in the train split (ties by item id), for every user."""
    counts = pc.value_counts(split_item_ids(train_split).drop_null())
    pairs = zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    top = [item for item, _ in sorted(pairs, key=lambda pair: (-pair[1], pair[0]))[:k]]
    return [list(top) for _ in range(n_users)]


def random_ranking(items: list[str], n_users: int, k: int = 100, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    k = min(k, len(items))
    return [
        [items[i] for i in rng.choice(len(items), size=k, replace=False)] for _ in range(n_users)
    ]


def user_vectors(
    split, encoder=None, cache: dict | None = None, block: int = NEIGHBOUR_BLOCK
) -> np.ndarray:
    """A user as the mean embedding of their history's item titles, unit length.

    Each distinct title is encoded once. Only the titles are read from the history column
    (no copy of its reviews), and users are averaged a block at a time, so that memory holds the
    title vectors and one block of interactions, never every interaction's vector. A user
    without history gets the zero vector (similar to no one).
    """
    histories = split.with_format("arrow")[:].column("history")
    titles = [
        pc.fill_null(pc.struct_field(chunk.flatten(), "title"), "") for chunk in histories.chunks
    ]
    distinct = pc.unique(pa.chunked_array(titles, type=pa.string()))
    title_vectors = np.asarray(embed(distinct.to_pylist(), encoder, cache), dtype=np.float32)
    users = np.zeros((len(histories), title_vectors.shape[1]), dtype=np.float32)
    start = 0
    for chunk, chunk_titles in zip(histories.chunks, titles, strict=True):
        codes = pc.index_in(chunk_titles, value_set=distinct).to_numpy(zero_copy_only=False)
        offsets = chunk.offsets.to_numpy().astype(np.int64)
        _mean_by_user(users[start : start + len(chunk)], title_vectors, codes, offsets, block)
        start += len(chunk)
    return users / np.maximum(np.linalg.norm(users, axis=1, keepdims=True), 1e-12)


def _mean_by_user(out, title_vectors, codes, offsets, block: int) -> None:
    """`out[u]` = mean of `title_vectors[codes[offsets[u]:offsets[u + 1]]]` (offsets relative to
    the chunk's first interaction after subtracting `offsets[0]`)."""
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    for first in range(0, len(lengths), block):
        last = min(first + block, len(lengths))
        rows = np.flatnonzero(lengths[first:last]) + first
        if not len(rows):
            continue
        vectors = title_vectors[codes[offsets[first] : offsets[last]]]
        sums = np.add.reduceat(vectors, offsets[rows] - offsets[first], axis=0)
        out[rows] = sums / lengths[rows, None]


def nearest_neighbours(
    queries: np.ndarray,
    pool: np.ndarray,
    same_as_query: np.ndarray,
    allowed: np.ndarray | None = None,
    block: int = NEIGHBOUR_BLOCK,
) -> np.ndarray:
    """Index of the pool row most similar (dot product) to each query row.

    `same_as_query[q]` is the pool index of query `q` itself (never its own neighbour), or -1.
    `allowed`, a bool mask over the pool or a stack of such masks (one per narrative kind), limits
    the candidates; the result has the same leading shape: one neighbour per mask and query.
    Ties go to the lowest pool index, as `argmax` over the full matrix would. The search runs by
    tiles of `block` queries by `block` pool rows, each tile computed once for every mask: peak
    memory is a few tiles, never queries x pool.
    """
    masks = np.ones((1, len(pool)), dtype=bool) if allowed is None else np.atleast_2d(allowed)
    # Kinds whose references sit on the same rows share one search.
    distinct: dict[bytes, int] = {}
    which = [distinct.setdefault(mask.tobytes(), len(distinct)) for mask in masks]
    unique_masks = [masks[which.index(index)] for index in range(len(distinct))]
    best = np.zeros((len(unique_masks), len(queries)), dtype=np.int64)
    best_score = np.full((len(unique_masks), len(queries)), -np.inf)
    for q_start in range(0, len(queries), block):
        q_stop = min(q_start + block, len(queries))
        query_block = queries[q_start:q_stop]
        own = same_as_query[q_start:q_stop]
        rows = np.arange(q_stop - q_start)
        for p_start in range(0, len(pool), block):
            p_stop = min(p_start + block, len(pool))
            tile = query_block @ pool[p_start:p_stop].T
            inside = np.flatnonzero((own >= p_start) & (own < p_stop))
            tile[inside, own[inside] - p_start] = -np.inf
            for index, mask in enumerate(unique_masks):
                columns = mask[p_start:p_stop]
                scores = tile if columns.all() else np.where(columns[None, :], tile, -np.inf)
                column = scores.argmax(axis=1)
                score = scores[rows, column]
                current = best_score[index, q_start:q_stop]
                better = score > current  # strict: an earlier tile keeps a tie
                current[better] = score[better]
                best[index, q_start:q_stop][better] = column[better] + p_start
    if np.isneginf(best_score).any():
        index, query = np.argwhere(np.isneginf(best_score))[0]
        raise ValueError(f"query row {query} has no allowed pool row other than itself")
    out = best[which]
    return out[0] if allowed is None or np.ndim(allowed) == 1 else out


def nearest_neighbour_narratives(
    query_split, pool_split, kinds, encoder=None, block: int = NEIGHBOUR_BLOCK
) -> dict[str, list[str]]:
    """For each query user and kind, the pool's reference narrative of the most similar user.

    A user is never their own neighbour, so the pool may be the evaluated split itself
    (leave-one-user-out) when the train split carries no narratives.
    """
    cache: dict = {}
    queries = user_vectors(query_split, encoder, cache, block)
    pool = user_vectors(pool_split, encoder, cache, block)
    pool_row = {user_id: row for row, user_id in enumerate(pool_split["user_id"])}
    own = np.array([pool_row.get(user_id, -1) for user_id in query_split["user_id"]], np.int64)
    narratives = pool_split.with_format("arrow")[:].column("narratives").combine_chunks()
    references = [pc.struct_field(narratives, kind) for kind in kinds]
    for kind, texts in zip(kinds, references, strict=True):
        if texts.null_count == len(texts):
            raise ValueError(f"the pool split has no {kind} narratives to borrow")
    allowed = np.stack([texts.is_valid().to_numpy(zero_copy_only=False) for texts in references])
    best = nearest_neighbours(queries, pool, own, allowed, block)
    return {
        kind: texts.take(best[index]).to_pylist()
        for index, (kind, texts) in enumerate(zip(kinds, references, strict=True))
    }


def neighbour_pool(train_split, evaluated_split) -> str:
    """The split the nearest-neighbour baseline borrows from: train when it has every narrative
    kind the evaluated split has, else the evaluated split itself (leave-one-out builds)."""
    if narrative_kinds(evaluated_split) <= narrative_kinds(train_split):
        return str(train_split.split)
    return str(evaluated_split.split)


def narrative_kinds(split) -> set[str]:
    """The narrative kinds that at least one row of a split carries."""
    narratives = split.with_format("arrow")[:].column("narratives").combine_chunks()
    return {
        kind.name
        for kind in narratives.type
        if pc.struct_field(narratives, kind.name).null_count < len(narratives)
    }


def neighbour_note(pool: str, split: str) -> str:
    """What a reader of the nearest-neighbour baseline's figures must know about them."""
    if pool == split:
        return (
            f"{NEAREST_NEIGHBOUR} borrows, for each {split} user, the reference narrative of the "
            f"most similar other {split} user: its text scores use labels of the evaluated split "
            "(under leave-one-out only that split has references), so they show how alike the "
            "references of similar users are, not what a model could write for an unseen user."
        )
    return (
        f"{NEAREST_NEIGHBOUR} borrows, for each {split} user, the reference narrative of the "
        f"most similar {pool} user."
    )
