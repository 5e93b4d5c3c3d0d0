"""A trained model's circuits: its templates and the values that bind them, image by image.

Where the torch model meets Qiskit. :func:`template` is the parameterized circuit of a model's
architecture in one variant (cached per model); :func:`parameter_values` turns images and masks
into the embedding angles and each image's weights (the model's own, or its mask position's) and
binds them (:func:`qmae_qiskit.circuits.binding.bind`); :func:`bound_circuit` is one image's
circuit with every parameter assigned. The runtime builds every job from these; the model class
itself never imports Qiskit.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .angles import embedding_angles
from .circuits.binding import TEMPLATE_VARIANTS, bind
from .circuits.binding import template as _template
from .circuits.features import FEATURES
from .circuits.fidelity import FidelityCircuit

if TYPE_CHECKING:
    from qiskit.circuit import QuantumCircuit

__all__ = ["template", "parameter_values", "bound_circuit"]

# a QMAE or QAE (typed loosely: the model module imports this one)
Model = Any

# each model's templates by (variant, measure, embedding layers): built once, dropped with the model
_TEMPLATES: weakref.WeakKeyDictionary[Model, dict[tuple[str, bool, int | None], FidelityCircuit]] = (
    weakref.WeakKeyDictionary()
)


def template(model: Model, variant: str = "reset", *, measure: bool = False) -> FidelityCircuit:
    """The parameterized circuit of ``model``'s architecture (cached per model and variant).

    Args:
        model: a :class:`~qmae_qiskit.QMAE` or :class:`~qmae_qiskit.QAE`.
        variant: a fidelity variant, a reconstruction circuit or ``"features"``
            (:data:`~qmae_qiskit.circuits.binding.TEMPLATE_VARIANTS`).
        measure: add the final measurement(s) of the SWAP-test control qubit (fidelity variants).

    Raises:
        ValueError: an unknown variant, the unitary ansatz (a bound, not a circuit), or the
            features variant of a model with ancillas or per-position encoders.
    """
    if variant not in TEMPLATE_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(TEMPLATE_VARIANTS)}")
    if model.ansatz == "unitary":
        raise ValueError("the unitary ansatz is a bound on what circuits can do, not a circuit: it has no template")
    if variant == FEATURES and (model.ancillas or model.condition == "position"):
        raise ValueError(
            "device features are built for one shared encoder without ancillas; this run has "
            f"{'ancillas' if model.ancillas else 'per-position encoders'}: use model.features() instead"
        )
    cache = _TEMPLATES.setdefault(model, {})
    key = (variant, measure, model.embedding_layers)
    if key not in cache:
        cache[key] = _template(
            model.num_qubits,
            variant,
            measure=measure,
            trash_qubits=model.trash_qubits,
            pairs=model.encoder_pairs,
            embedding_layers=model.embedding_layers,
            decoder=model.decoder,
            ancillas=model.ancillas,
            ancilla_pairs=model.ancilla_pairs or None,
        )
    return cache[key]


def parameter_values(
    model: Model, images: torch.Tensor, mask: torch.Tensor, variant: str = "reset", *, bases: Sequence[str] = ()
) -> np.ndarray:
    """Values of ``template(model, variant)``'s parameters, in ``circuit.parameters`` order.

    Args:
        model: the model whose weights (and token) are bound.
        images: ``(B, H, W)``.
        mask: ``(B, H, W)`` bool (all ``False``: the clean images).
        variant: the template's variant.
        bases: the ``"features"`` variant's measurement bases
            (:func:`~qmae_qiskit.circuits.measurement_bases`); each image is bound once per basis,
            image-major (default: Z on every latent qubit).

    Returns:
        ``(B, num_parameters)`` float array: one binding per image (one PUB for a sampler);
        ``(B * len(bases), num_parameters)`` for the ``"features"`` variant.

    Raises:
        ValueError: malformed images or mask, or ``bases`` for another variant.
    """
    images, mask = model.check_inputs(images, mask)
    spec = template(model, variant)
    angles = embedding_angles if model.embedding_layers is None else model.ladder_angles
    with torch.no_grad():
        masked = angles(model.fill(images, mask).flatten(1).double())
        original = angles(images.flatten(1).double())
        parts = [w for w in (model.theta, model.decoder_theta, model.ancilla_theta) if w is not None]
        if model.condition == "position":  # each image's own position's weights
            where = model.positions(mask)
            weights = torch.cat([w.detach().double()[where] for w in parts], dim=1)
        else:
            weights = torch.cat([w.detach().double() for w in parts]).expand(images.shape[0], -1)
    return bind(spec, masked.numpy(), original.numpy(), weights.numpy(), bases=bases)


def bound_circuit(
    model: Model, image: torch.Tensor, mask: torch.Tensor, *, variant: str = "reset", measure: bool = False
) -> QuantumCircuit:
    """One image's circuit with every parameter assigned.

    Args:
        model: the model.
        image: ``(H, W)``.
        mask: ``(H, W)`` bool.
        variant: a fidelity variant (:data:`~qmae_qiskit.circuits.VARIANTS`) or a reconstruction.
        measure: add the final measurement(s) of the SWAP-test control qubit.

    Returns:
        A :class:`~qiskit.circuit.QuantumCircuit` with every parameter assigned.
    """
    image, mask = torch.as_tensor(image), torch.as_tensor(mask)
    spec = template(model, variant, measure=measure)
    values = parameter_values(model, image[None], mask[None], variant)[0]
    return spec.circuit.assign_parameters(dict(zip(spec.circuit.parameters, values)))
