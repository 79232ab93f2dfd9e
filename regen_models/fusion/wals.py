"""WALS collaborative-filtering vectors: item factors fitted on the train split, user vectors
folded in from a user's own interactions.

"Beyond Retrieval" factorises the user-item matrix with Weighted Alternating Least Squares (Hu,
Koren and Volinsky, 2008) and represents each interaction by its item's vector. The fit is
`implicit`'s ALS on the CPU, on the interactions of the train split only (each row's history and
target: under the user-disjoint protocol, the whole sequences of the training users), and is
cached per (category, vocabulary, interactions, hyperparameters) under `$REGEN_CACHE/wals/`.

The paper speaks of a user-item *rating* matrix; this matrix holds interaction counts (an item
bought once is 1, twice 2), the implicit feedback Hu, Koren and Volinsky's WALS is made for, and
the 1-5 ratings are left out: the item to write about is one of the interactions a user's vector
is folded in from, and its rating is a label that no model may read (`dataset_card.md`); a
rating-weighted fold-in would have to treat the target unlike the history. Amazon ratings are
also mostly 5, so they would tell the fit little.

A user the fit never saw (every validation and test user of a user-disjoint build) gets a vector
by fold-in: the least-squares solution of WALS's user step with the item factors fixed, from that
user's interactions alone, exactly what ALS computes for a user in training. The test data never
enters a factorisation. Items without a training interaction keep a zero vector: nothing is known
about them collaboratively.

A split's item ids are read from its Arrow table with pyarrow (`split_items`): the reviews and
texts of its rows never become Python objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import torch

from regen_dataset.files import atomic_path
from regen_models.base import cache_dir
from regen_models.fusion.user_vectors import (  # noqa: F401
    ALPHA,
    REGULARIZATION,
    cached_gram,
    fold_in,
    mean_norm,
)
from regen_models.items import ItemVocabulary


@dataclass(frozen=True)
class WalsSettings:
    dim: int = 128
    regularization: float = REGULARIZATION
    alpha: float = ALPHA  # confidence of an interaction: alpha x its count
    iterations: int = 15
    seed: int = 0

    def slug(self) -> str:
        return (
            f"d{self.dim}-r{self.regularization:g}-a{self.alpha:g}-i{self.iterations}-s{self.seed}"
        )


def sequence_item_ids(row: Mapping) -> list[str]:
    """The items of a split row's interactions, oldest first: its history, then its target."""
    ids = [purchase["item_id"] for purchase in row["history"] or ()]
    target = row.get("target")
    if target is not None:
        ids.append(target["item_id"])
    return ids


@dataclass
class SplitItems:
    """The item indices of a split's interactions: row i's history is
    `history[offsets[i]:offsets[i + 1]]` (oldest first), its target `targets[i]` (-1: none)."""

    history: np.ndarray
    offsets: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    def sequence(self, row: int, max_interactions: int | None = None) -> list[int]:
        """Row `row`'s items as a fusion model reads them: the newest `max_interactions - 1` of
        its history (all of it for None), then its target."""
        history = self.history[self.offsets[row] : self.offsets[row + 1]]
        if max_interactions is not None:
            history = (
                history[len(history) - (max_interactions - 1) :] if max_interactions > 1 else []
            )
        target = [int(self.targets[row])] if self.targets[row] >= 0 else []
        return [int(item) for item in history] + target

    def matrix(self, num_items: int):
        """scipy CSR `[rows, items]` of interaction counts (history and target)."""
        users = np.arange(len(self))
        with_target = self.targets >= 0
        return count_matrix(
            np.concatenate([np.repeat(users, np.diff(self.offsets)), users[with_target]]),
            np.concatenate([self.history, self.targets[with_target]]),
            (len(self), num_items),
        )


def split_items(split, vocabulary: ItemVocabulary, where: str = "") -> SplitItems:
    """The item indices of a `datasets` split's interactions, read with pyarrow from its Arrow
    table (`history.item_id` and `target.item_id` alone). An unknown item is an error that
    names the user."""
    table = split.with_format("arrow")[:]
    history = table.column("history")
    lengths = pc.fill_null(pc.list_value_length(history), 0).to_numpy()
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    known = vocabulary.table.column("item_id").combine_chunks()
    history_ids = pc.struct_field(pc.list_flatten(history), "item_id")
    history_index = pc.index_in(history_ids, value_set=known)
    if history_index.null_count:
        position = int(pc.index(pc.is_null(history_index), True).as_py())
        row = int(np.searchsorted(offsets, position, side="right") - 1)
        _unknown(vocabulary, history_ids[position].as_py(), table, row, where)
    target_ids = pc.struct_field(table.column("target"), "item_id")
    target_index = pc.index_in(target_ids, value_set=known)
    unknown = pc.and_(pc.is_valid(target_ids), pc.is_null(target_index))
    if pc.any(unknown).as_py():
        row = int(pc.index(unknown, True).as_py())
        _unknown(vocabulary, target_ids[row].as_py(), table, row, where)
    return SplitItems(
        history=history_index.to_numpy().astype(np.int64),
        offsets=offsets,
        targets=pc.fill_null(target_index, -1).to_numpy().astype(np.int64),
    )


def _unknown(vocabulary: ItemVocabulary, item_id, table, row: int, where: str):
    user = table.column("user_id")[row].as_py() or f"row {row}"
    vocabulary.index(item_id, where=f"{where} user {user}".strip())  # raises UnknownItemError
    raise AssertionError(f"item {item_id!r} was not found, yet the vocabulary holds it")


def interaction_matrix(rows: Iterable[Mapping], vocabulary: ItemVocabulary, where: str = ""):
    """scipy CSR `[users, items]` of interaction counts, one user per row of `rows` (dicts)."""
    users, items, count = [], [], 0
    for number, row in enumerate(rows):
        user = row.get("user_id") or f"row {number}"
        ids = vocabulary.indices(sequence_item_ids(row), where=f"{where} user {user}".strip())
        users.extend([number] * len(ids))
        items.extend(ids)
        count = number + 1
    shape = (count, len(vocabulary))
    return count_matrix(np.asarray(users, np.int64), np.asarray(items, np.int64), shape)


def count_matrix(users: np.ndarray, items: np.ndarray, shape: tuple[int, int]):
    """scipy CSR of the number of times each (user, item) pair occurs (an item bought twice
    counts twice), in canonical form (sorted indices), so that equal counts hash equally."""
    from scipy import sparse

    data = np.ones(len(items), dtype=np.float32)
    matrix = sparse.csr_matrix((data, (users, items)), shape=shape)
    matrix.sum_duplicates()
    return matrix


def fit_item_factors(matrix, settings: WalsSettings, progress: bool = False) -> np.ndarray:
    """float32 `[items, dim]` WALS item factors of a `[users, items]` count matrix (zero rows
    for items without an interaction)."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    if matrix.nnz == 0:
        raise ValueError("WALS needs at least one training interaction; the matrix is empty")
    with threadpool_limits(1, "blas"):  # implicit parallelises itself; BLAS threads fight it
        model = AlternatingLeastSquares(
            factors=settings.dim,
            regularization=settings.regularization,
            alpha=settings.alpha,
            iterations=settings.iterations,
            random_state=settings.seed,
        )
        model.fit(matrix, show_progress=progress)
    factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    factors[np.asarray(matrix.getnnz(axis=0)) == 0] = 0.0
    return factors


def item_factors(
    train,
    vocabulary: ItemVocabulary,
    settings: WalsSettings,
    *,
    progress: bool = False,
) -> tuple[np.ndarray, Path]:
    """The WALS item factors of the train split's interactions, cached on disk; and the cache
    file. `train` is the split (a `datasets.Dataset`: its item ids are read with pyarrow alone,
    `split_items`) or its rows as dicts.

    The cache key holds the category, the vocabulary's ids, a digest of the interaction matrix
    and the settings, so another train split, catalog or setting never reads a stale fit.
    """
    if hasattr(train, "with_format"):
        matrix = split_items(train, vocabulary, "train split").matrix(len(vocabulary))
    else:
        matrix = interaction_matrix(train, vocabulary, "train split")
    path = cache_path(vocabulary, matrix, settings)
    if path.exists():
        factors = np.load(path)
        if factors.shape == (len(vocabulary), settings.dim):
            return factors, path
    factors = fit_item_factors(matrix, settings, progress)
    with atomic_path(path) as partial:
        with open(partial, "wb") as handle:
            np.save(handle, factors)
    return factors, path


def cache_path(vocabulary: ItemVocabulary, matrix, settings: WalsSettings) -> Path:
    digest = hashlib.sha256(vocabulary.ids_fingerprint.encode())
    for array in (matrix.indptr, matrix.indices, matrix.data):
        digest.update(np.ascontiguousarray(array).tobytes())
    name = f"{vocabulary.category}-{vocabulary.ids_fingerprint}-{digest.hexdigest()[:16]}"
    return cache_dir() / "wals" / f"{name}-{settings.slug()}.npy"


def mean_user_norm(
    factors: np.ndarray, sequences: list[list[int]], regularization: float, alpha: float
) -> float:
    """The mean norm of the vectors folded in from `sequences` (item indices per user)."""
    width = max(len(items) for items in sequences)
    padded = torch.tensor([[-1] * (width - len(items)) + items for items in sequences])
    users = fold_in(torch.from_numpy(factors), padded, regularization, alpha)
    return mean_norm(users.numpy())
