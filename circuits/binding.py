"""Binding a model's values to a template (pure Qiskit and numpy: no torch).

A template (:class:`~qmae_qiskit.circuits.FidelityCircuit`) names the roles of its parameters: the
masked image's embedding angles, the original's, the weights (encoder, untied decoder, ancilla
stage) and, for the features variant, the measurement basis. :func:`template` builds the one an
architecture's variant needs; :func:`bind` puts one row of values per circuit in the order
``spec.circuit.parameters`` lists them, which is what a Sampler PUB takes. The torch side (the
model's angles and weights as arrays) is :mod:`qmae_qiskit.model_circuits`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .features import FEATURES, basis_angles, features_circuit
from .fidelity import (
    CIRCUIT_VARIANTS,
    RECONSTRUCTION,
    RECONSTRUCTION_POSTSELECT_FLAG,
    RECONSTRUCTION_VARIANTS,
    FidelityCircuit,
    fidelity_circuit,
    reconstruction_circuit,
)

__all__ = ["TEMPLATE_VARIANTS", "template", "bind"]

TEMPLATE_VARIANTS = (*CIRCUIT_VARIANTS, FEATURES)  # every template a model builds


def template(
    num_qubits: int,
    variant: str = "reset",
    *,
    measure: bool = False,
    trash_qubits: Sequence[int],
    pairs: Sequence[Sequence[int]],
    embedding_layers: int | None = None,
    decoder: str = "tied",
    ancillas: int = 0,
    ancilla_pairs: Sequence[Sequence[int]] | None = None,
) -> FidelityCircuit:
    """The parameterized circuit of one variant of an architecture.

    Args:
        num_qubits: data qubits ``n``.
        variant: one of :data:`TEMPLATE_VARIANTS`: a fidelity variant (post-selected ones included),
            a reconstruction circuit, or ``"features"`` (the latent qubits read in Pauli bases).
        measure: add the final measurement(s) of the fidelity variants.
        trash_qubits, pairs, embedding_layers, decoder, ancillas, ancilla_pairs: the architecture
            (as :func:`~qmae_qiskit.circuits.fidelity_circuit` takes them; ``pairs`` every layer's).

    Returns:
        A :class:`~qmae_qiskit.circuits.FidelityCircuit`.

    Raises:
        ValueError: an unknown variant, or the features variant of an architecture with ancillas.
    """
    if variant not in TEMPLATE_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(TEMPLATE_VARIANTS)}")
    if variant == FEATURES:  # no decoder, no reference
        if ancillas:
            raise ValueError("device features are built for an encoder without ancillas")
        return features_circuit(num_qubits, trash_qubits=trash_qubits, pairs=pairs, embedding_layers=embedding_layers)
    common = dict(
        trash_qubits=trash_qubits,
        pairs=pairs,
        embedding_layers=embedding_layers,
        decoder=decoder,
        ancillas=ancillas,
        ancilla_pairs=ancilla_pairs,
    )
    if variant in RECONSTRUCTION_VARIANTS:
        return reconstruction_circuit(
            num_qubits,
            postselect=variant != RECONSTRUCTION,
            flag=variant == RECONSTRUCTION_POSTSELECT_FLAG,
            **common,  # type: ignore[arg-type]
        )
    return fidelity_circuit(num_qubits, variant=variant, measure=measure, **common)  # type: ignore[arg-type]


def bind(
    spec: FidelityCircuit,
    masked: np.ndarray,
    original: np.ndarray,
    weights: np.ndarray,
    *,
    bases: Sequence[str] = (),
) -> np.ndarray:
    """One row of parameter values per circuit, in ``spec.circuit.parameters`` order.

    Args:
        spec: the template.
        masked: ``(B, A)`` embedding angles of the masked (filled) images.
        original: ``(B, A)`` embedding angles of the unmasked images.
        weights: ``(B, W)`` each image's weights: encoder, then untied decoder, then ancilla stage
            (what ``spec.weight_parameters`` lists; a template uses a prefix of them).
        bases: the features variant's measurement bases (each image bound once per basis,
            image-major; default: Z on every latent qubit).

    Returns:
        ``(B, P)``, or ``(B * len(bases), P)`` for the features variant.

    Raises:
        ValueError: ``bases`` for a variant without a basis, or arrays of mismatched rows.
    """
    if bases and spec.basis is None:
        raise ValueError(f"bases= is for the 'features' variant, not {spec.variant!r}")
    if not (len(masked) == len(original) == len(weights)):
        raise ValueError(f"masked, original and weights need one row per image, got {len(masked)}, "
                         f"{len(original)} and {len(weights)}")  # fmt: skip
    named = np.concatenate([masked, original, weights], axis=1)
    size = masked.shape[1]  # columns of `named`: masked angles, original angles, weights
    columns = {p: k for k, p in enumerate(spec.masked)}
    columns.update({p: size + k for k, p in enumerate(spec.original)})
    columns.update({p: 2 * size + k for k, p in enumerate(spec.weight_parameters)})
    if spec.basis is not None:  # each image once per basis (image-major), the basis angles last
        rotations = np.array([basis_angles(b) for b in bases or ["Z" * (len(spec.basis) // 2)]])
        columns.update({p: named.shape[1] + k for k, p in enumerate(spec.basis)})
        named = np.hstack([np.repeat(named, len(rotations), axis=0), np.tile(rotations, (len(named), 1))])
    return named[:, [columns[p] for p in spec.circuit.parameters]]
