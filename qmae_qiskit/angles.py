"""Differentiable map from images to the amplitude embedding's gate angles.

The embedding circuit (:func:`qmae_qiskit.circuits.amplitude_embedding`) takes the gate angles of
its multiplexers. Here a batch of real vectors becomes first the tree angles (level ``l``, node
``p``: ``2 atan2(|right half|, |left half|)``, signed ``2 atan2(x_1, x_0)`` on the last level),
then the gate angles through the fixed matrices of :func:`~qmae_qiskit.circuits.multiplexer_matrix`.

Black regions of MNIST make whole sub-trees zero, where ``atan2(0, 0)`` and ``sqrt(0)`` have no
derivative. Those nodes get angle 0 with a zero gradient (the "double where" trick), so angles and
gradients stay finite: the state does not depend on them, their amplitude being zero.
"""

from __future__ import annotations

import functools

import torch

from .circuits.embedding import multiplexer_matrix

__all__ = ["embedding_angles", "tree_angles"]


def _safe_atan2(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    zero = (x == 0) & (y == 0)
    x_safe = torch.where(zero, torch.ones_like(x), x)
    return torch.where(zero, torch.zeros_like(x), torch.atan2(y, x_safe))


def _safe_sqrt(v: torch.Tensor) -> torch.Tensor:
    positive = v > 0
    return torch.where(positive, torch.where(positive, v, torch.ones_like(v)).sqrt(), torch.zeros_like(v))


def tree_angles(vectors: torch.Tensor) -> list[torch.Tensor]:
    """Tree angles of each level for a batch of real vectors.

    Args:
        vectors: ``(B, 2**n)`` real tensor (need not be normalized; must not be all zero to mean
            anything).

    Returns:
        ``n`` tensors; level ``l`` has shape ``(B, 2**l)``, node ``p`` indexing the values of the
        ``l`` qubits above the target (most significant first).
    """
    batch, dim = vectors.shape
    n = dim.bit_length() - 1
    levels = []
    for level in range(n):
        if level == n - 1:
            pairs = vectors.reshape(batch, 2**level, 2)
            y, x = pairs[..., 1], pairs[..., 0]
        else:
            sq = vectors.reshape(batch, 2 ** (level + 1), -1).square().sum(-1).reshape(batch, 2**level, 2)
            y, x = _safe_sqrt(sq[..., 1]), _safe_sqrt(sq[..., 0])
        levels.append(2.0 * _safe_atan2(y, x))
    return levels


@functools.cache
def _level_matrix(level: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(multiplexer_matrix(level), dtype=dtype)


def embedding_angles(vectors: torch.Tensor) -> torch.Tensor:
    """Gate angles of :func:`~qmae_qiskit.circuits.amplitude_embedding` for a batch of vectors.

    Args:
        vectors: ``(B, 2**n)`` real tensor, row-major flattened images (any scale).

    Returns:
        ``(B, 2**n - 1)`` angles in the circuit's parameter order; differentiable, finite.

    Raises:
        ValueError: not a 2-D tensor whose width is a power of 2 (>= 2).
    """
    if vectors.dim() != 2 or vectors.shape[1] < 2 or vectors.shape[1] & (vectors.shape[1] - 1):
        raise ValueError(f"expected a (batch, 2**n) tensor, got shape {tuple(vectors.shape)}")
    out = [a @ _level_matrix(level, a.dtype).to(a.device) for level, a in enumerate(tree_angles(vectors))]
    return torch.cat(out, dim=1)
