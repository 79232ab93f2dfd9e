"""The parts of WALS a fusion model runs at prediction time, in torch and numpy alone (a
checkpoint published with its modeling code ships this file): the mean norm the CF vectors are
divided by, and the fold-in that gives a user unseen in training their vector."""

from __future__ import annotations

import numpy as np
import torch

# The WALS fit's defaults (`wals.WalsSettings`), which a fold-in must repeat: its L2 weight, and
# the confidence of an interaction (alpha x its count).
REGULARIZATION = 0.05
ALPHA = 10.0


def mean_norm(vectors: np.ndarray | torch.Tensor) -> float:
    """The mean L2 norm of the non-zero rows (the zero rows are items WALS never saw)."""
    norms = np.linalg.norm(np.asarray(vectors, dtype=np.float64), axis=1)
    present = norms[norms > 0]
    if not len(present):
        raise ValueError("every vector is zero: there is no norm to normalise by")
    return float(present.mean())


def fold_in(
    factors: torch.Tensor,
    item_ids: torch.Tensor,
    regularization: float,
    alpha: float,
    gram: torch.Tensor | None = None,
) -> torch.Tensor:
    """`[batch, dim]` user vectors from the items of each row of `item_ids` (`[batch, length]`,
    -1 pads), with the item `factors` fixed: WALS's user step,

        x_u = (YᵀY + Yᵀ(C_u - I)Y + λI)⁻¹ YᵀC_u p_u,   C_u = alpha x counts on u's items,

    the same solution `implicit`'s `recalculate_user` gives. `gram` is YᵀY when the caller has
    it already. A row without any item is an error.

    The small `dim x dim` systems are solved in float64 on the CPU (Apple's MPS has no float64);
    only the rows of the items in use leave the factors' device. The result is float32 on that
    device.
    """
    device = factors.device
    dim = factors.shape[1]
    if gram is None:
        gram = gram_of(factors)
    base = gram.to("cpu", torch.float64) + regularization * torch.eye(dim, dtype=torch.float64)
    item_ids = item_ids.cpu()
    systems, targets = [], []
    for row in range(item_ids.shape[0]):
        ids = item_ids[row][item_ids[row] >= 0]
        if not len(ids):
            raise ValueError(f"row {row} has no interaction to fold a user vector in from")
        unique, counts = torch.unique(ids, return_counts=True)
        vectors = factors[unique.to(device)].to("cpu", torch.float64)
        confidence = alpha * counts.double()
        systems.append(base + vectors.T @ ((confidence - 1)[:, None] * vectors))
        targets.append(vectors.T @ confidence)
    solved = torch.linalg.solve(torch.stack(systems), torch.stack(targets))
    return solved.to(device=device, dtype=torch.float32)


def gram_of(factors: torch.Tensor) -> torch.Tensor:
    """YᵀY of `factors`, in float64 on the CPU."""
    factors = factors.detach().to("cpu", torch.float64)
    return factors.T @ factors


def cached_gram(owner, factors: torch.Tensor) -> torch.Tensor:
    """`gram_of(factors)`, computed once per buffer version and kept on `owner`."""
    key = (factors.data_ptr(), factors._version, factors.device)
    if getattr(owner, "_gram_key", None) != key:
        owner._gram = gram_of(factors)
        owner._gram_key = key
    return owner._gram
