"""Mask-position conditioning: one set of weights (and one token) per patch position.

A ``condition="position"`` model (:class:`~qmae_qiskit.ModelConfig`) holds its weights with a
leading position axis; each image uses the set of the patch its mask covers. :func:`by_position`
runs an engine call once per position present in a batch and puts the results back in batch
order, so the engines never know about positions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .masking import single_patch_positions

__all__ = ["mask_positions", "weights_at", "by_position"]

# a QMAE or QAE (typed loosely: the model module imports this one)
Model = Any


def mask_positions(mask: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    """``(B,)`` the masked patch's position of each mask (row-major on the patch grid).

    Raises:
        ValueError: a mask that is not exactly one whole patch.
    """
    positions = single_patch_positions(mask, patch_size)
    if (positions < 0).any():
        bad = (positions < 0).nonzero().flatten()[:5].tolist()
        ph, pw = patch_size
        raise ValueError(
            f"condition='position' picks the weights by the masked patch, but mask(s) {bad} are not exactly one "
            f"whole {ph}x{pw} patch; mask one patch per image (model.random_mask does)"
        )
    return positions


def weights_at(model: Model, position: int | None) -> dict[str, torch.Tensor | None]:
    """The engine's weights (``theta``, ``decoder``, and ``ancilla`` with ancillas) for one patch
    position (``None``: the unconditioned model's)."""

    def pick(w: torch.Tensor | None) -> torch.Tensor | None:
        return w if w is None or position is None else w[position]

    weights = {"theta": pick(model.theta), "decoder": pick(model.decoder_theta)}
    if model.ancillas:
        weights["ancilla"] = pick(model.ancilla_theta)
    return weights


def by_position(model: Model, mask: torch.Tensor, run: Callable[[dict[str, Any], Any], Any]) -> Any:
    """``run(weights, rows)`` once (unconditioned) or per patch position on that position's rows,
    the results put back in batch order (a tensor, or a tuple / named tuple of tensors or ``None``)."""
    if model.condition != "position":
        return run(weights_at(model, None), slice(None))
    positions = mask_positions(mask, model.patch_size).to(mask.device)
    groups = [(p, (positions == p).nonzero().flatten()) for p in positions.unique().tolist()]
    parts = [run(weights_at(model, p), rows) for p, rows in groups]
    back = torch.cat([rows for _, rows in groups]).argsort()

    def merge(pieces: list[Any]) -> Any:
        return None if pieces[0] is None else torch.cat(pieces)[back]

    if isinstance(parts[0], tuple):
        fields = [merge(list(field)) for field in zip(*parts)]
        return type(parts[0])(*fields) if hasattr(parts[0], "_fields") else tuple(fields)
    return merge(parts)
