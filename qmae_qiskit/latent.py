"""The latent features: what the encoder learned, as numbers a probe or a device can read.

Expectation values of Pauli observables on the latent qubits of ``U |psi>`` (the state the trash is
cut from), computed exactly from the encoder's unitary. Their device counterpart is measured by
:mod:`qmae_qiskit.circuits.features`; the linear probe that judges them is :mod:`qmae_qiskit.probe`.
"""

from __future__ import annotations

from typing import Any

import torch

from .metrics import pauli_expectations

__all__ = ["latent_features"]

# a QMAE or QAE (typed loosely: the model module imports this one)
Model = Any


def latent_features(
    model: Model, images: torch.Tensor, mask: torch.Tensor | None = None, *, kind: str = "pauli2"
) -> torch.Tensor:
    """:meth:`QMAE.features <qmae_qiskit.QMAE.features>`: ``(B, F)`` Pauli expectations on the
    latent qubits of the encoded (masked, when ``mask`` is given) images; no gradient.

    Raises:
        ValueError: a bad ``kind``, malformed images or mask, a position-conditioned model without
            a mask, or a model on another engine than the exact one.
    """
    if model.condition == "position" and mask is None:
        raise ValueError("a condition='position' model's encoder depends on the masked patch: pass a mask")
    unitary = getattr(model._engine, "unitary", None)
    if unitary is None:
        raise ValueError("features are computed by the exact engine: call model.set_engine('exact') first")
    if mask is None:
        images, _ = model.check_inputs(images, torch.zeros(images.shape, dtype=torch.bool, device=images.device))
        vectors = images.flatten(1)
        mask = torch.zeros_like(images, dtype=torch.bool)
    else:
        images, mask = model.check_inputs(images, mask)
        vectors = model.fill(images, mask).flatten(1)
    with torch.no_grad():
        psi = model.embed(vectors).to(model._engine_dtype())
        psi = psi / psi.norm(dim=1, keepdim=True).clamp_min(1e-300)

        def encode(weights: dict[str, Any], rows: Any) -> torch.Tensor:
            u = unitary(weights["theta"])  # (2^n, 2^n), Qiskit's index order
            return psi[rows] @ u.transpose(0, 1)

        states = model._by_position(mask, encode)
        return pauli_expectations(states, model.num_qubits, model.latent_indices, kind).float()
