"""The training losses' pieces that are not the model's forward pass: the options' rules and the
composite loss's pixels.

:meth:`QMAE.loss_terms <qmae_qiskit.QMAE.loss_terms>` is the loss; this module checks its options
(:func:`check_loss_options`) and computes what ``loss="composite"`` reads: the output's pixel
probabilities of the model's own procedure, from the same differentiable pass as its branches
(:func:`branches_and_pixels`).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .conditioning import by_position
from .engines import Branches
from .engines.exact import ExactEngine

__all__ = ["LOSSES", "check_loss_options", "branches_and_pixels"]

# a QMAE or QAE (typed loosely: the model module imports this one)
Model = Any

LOSSES = ("fidelity", "composite")


def check_loss_options(model: Model, *, trash_weight: float, keep_weight: float, loss: str) -> None:
    """Refuse a loss or weight that does not apply to ``model``'s objective.

    Raises:
        ValueError: a negative or non-finite weight, a weight of the other objective, an unknown
            loss.
    """
    for name, weight in (("trash_weight", trash_weight), ("keep_weight", keep_weight)):
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {weight!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    postselect = model.objective == "postselect"
    if postselect and trash_weight:
        raise ValueError("trash_weight is the reset objective's term; with post-selection use keep_weight")
    if not (postselect or model.ancillas) and keep_weight:
        raise ValueError(
            "keep_weight holds the acceptance rate of objective='postselect' (or of ancillas > 0); with reset use "
            "trash_weight"
        )


def branches_and_pixels(model: Model, images: torch.Tensor, mask: torch.Tensor) -> tuple[Branches, torch.Tensor]:
    """The model's :meth:`~qmae_qiskit.QMAE.branches` and the output's pixel probabilities
    ``(B, H, W)`` of its own procedure, from one differentiable pass of the exact engine.

    Raises:
        ValueError: a model on another engine, malformed images or mask.
    """
    if model.engine != "exact":
        raise ValueError(
            "loss='composite' reads the output's pixels, which the exact engine computes: use engine exact"
        )
    images, mask = model.check_inputs(images, mask)
    masked = model.embed(model.fill(images, mask).flatten(1))
    original = model.embed(images.flatten(1))
    postselect = model.objective == "postselect"
    engine = model._engine
    assert isinstance(engine, ExactEngine)

    def run(w: dict[str, Any], rows: Any) -> tuple[torch.Tensor | None, ...]:
        out = engine.decoded(w["theta"], masked[rows], decoder=w["decoder"], ancilla=w.get("ancilla"))
        b = engine.branches_from(out, original[rows])
        probs = (out[:, :1] if postselect else out).abs().square().sum(1)
        total = probs.sum(1, keepdim=True)
        probs = probs / torch.where(total > 0, total, torch.ones_like(total))
        return (*b, probs)

    *fields, probs = by_position(model, mask, run)
    return Branches(*fields), probs.reshape(images.shape).clamp_min(1e-12)
