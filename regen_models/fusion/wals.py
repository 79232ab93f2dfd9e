"""WALS collaborative-filtering vectors: item factors fitted on the train split, user vectors
folded in from a user's own interactions.

"Beyond Retrieval" factorises the user-item matrix with Weighted Alternating Least Squares (Hu,
Koren and Volinsky, 2008) and represents each interaction by its item's vector. The fit is
`implicit`'s ALS on the CPU, on the interactions of the train split only (each row's history and
target: under the user-disjoint protocol, the whole sequences of the training users), and is
cached per (category, vocabulary, interactions, hyperparameters) under `$REGEN_CACHE/wals/`.

A user the fit never saw (every validation and test user of a user-disjoint build) gets a vector
by fold-in: the least-squares solution of WALS's user step with the item factors fixed, from that
user's interactions alone, exactly what ALS computes for a user in training. The test data never
enters a factorisation. Items without a training interaction keep a zero vector: nothing is known
about them collaboratively.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regen_dataset.files import atomic_path
from regen_models.base import cache_dir
from regen_models.fusion.user_vectors import cached_gram, fold_in, mean_norm  # noqa: F401
from regen_models.items import ItemVocabulary


@dataclass(frozen=True)
class WalsSettings:
    dim: int = 128
    regularization: float = 0.05
    alpha: float = 10.0  # confidence of an interaction: alpha x its count
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


def interaction_matrix(rows: Iterable[Mapping], vocabulary: ItemVocabulary, where: str = ""):
    """scipy CSR `[users, items]` of interaction counts, one user per row of `rows`."""
    from scipy import sparse

    indptr, indices = [0], []
    for number, row in enumerate(rows):
        user = row.get("user_id") or f"row {number}"
        ids = sequence_item_ids(row)
        indices.extend(vocabulary.indices(ids, where=f"{where} user {user}".strip()))
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float32)
    matrix = sparse.csr_matrix(
        (data, np.asarray(indices, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
        shape=(len(indptr) - 1, len(vocabulary)),
    )
    matrix.sum_duplicates()  # an item bought twice counts twice
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
    train_rows: Iterable[Mapping],
    vocabulary: ItemVocabulary,
    settings: WalsSettings,
    *,
    progress: bool = False,
) -> tuple[np.ndarray, Path]:
    """The WALS item factors of the train rows' interactions, cached on disk; and the cache file.

    The cache key holds the category, the vocabulary's ids, a digest of the interaction matrix
    and the settings, so another train split, catalog or setting never reads a stale fit.
    """
    matrix = interaction_matrix(train_rows, vocabulary, "train split")
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


def rows_of(split, count: int | None = None) -> list[dict]:
    """A `datasets` split (or its first `count` rows) as dicts of the columns WALS reads."""
    if count is not None:
        split = split.select(range(min(count, len(split))))
    columns = [name for name in ("user_id", "history", "target") if name in split.column_names]
    return split.select_columns(columns).to_list()
