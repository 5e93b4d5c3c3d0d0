"""Amplitude embedding as a parameterized binary tree of uniformly controlled RY rotations.

A real vector ``x`` of length ``2**n`` (index ``i = sum_q b_q 2**q``, Qiskit's little-endian order)
is prepared from ``|0...0>`` level by level: level ``l`` (``0 <= l < n``) rotates qubit
``n - 1 - l``, controlled by the ``l`` qubits above it, so that the weight of each half of every
sub-tree is right. Each level is one uniformly controlled RY (a *multiplexer*), written as
``2**l`` RY gates and ``2**l`` CNOTs in Gray-code order (Moettoenen et al., 2004).

The circuit's parameters are the multiplexers' **gate angles** (``2**n - 1`` of them), not the
tree angles: every gate then has its own parameter, which keeps parameter-shift gradients and
binding simple. :func:`multiplexer_matrix` maps tree angles to gate angles; the differentiable
map from images to gate angles lives in :mod:`qmae_qiskit.angles`.

Why not qiskit-machine-learning's ``raw_feature_vector`` (``qiskit_machine_learning.circuit.library``):
it is not differentiable with respect to its inputs in ``EstimatorQNN`` (qiskit-machine-learning
issue #669).
"""

from __future__ import annotations

import numpy as np
from qiskit.circuit import ParameterVector, QuantumCircuit

__all__ = [
    "MAX_QUBITS",
    "amplitude_embedding",
    "check_num_qubits",
    "image_qubits",
    "ladder_embedding",
    "multiplexer_matrix",
    "num_embedding_parameters",
]

# 12 qubits = 64x64 images: a 4096x4096 unitary, the largest the exact engine builds in seconds
MAX_QUBITS = 12


def check_num_qubits(num_qubits: int) -> int:
    """``num_qubits`` if it is a supported number of data qubits (2..12).

    Raises:
        ValueError: anything else.
    """
    if isinstance(num_qubits, bool) or not isinstance(num_qubits, int) or not 2 <= num_qubits <= MAX_QUBITS:
        raise ValueError(f"the number of data qubits must be an integer in 2..{MAX_QUBITS}, got {num_qubits!r}")
    return num_qubits


def image_qubits(image_size: int) -> int:
    """Data qubits ``n`` that amplitude-embed a square ``image_size`` x ``image_size`` image
    (``2**n = image_size**2``): the one home of the rule "a power of 2 from 2 to 64".

    Raises:
        ValueError: an image side that is not a power of 2 in 2..64.
    """
    size = image_size
    if (
        isinstance(size, bool)
        or not isinstance(size, int)
        or size < 2
        or size & (size - 1)
        or size > 2 ** (MAX_QUBITS // 2)
    ):
        raise ValueError(
            f"image size must be a power of 2 from 2 to {2 ** (MAX_QUBITS // 2)} (n = 2..{MAX_QUBITS} qubits), "
            f"got {image_size!r}"
        )
    return 2 * (size.bit_length() - 1)


def num_embedding_parameters(num_qubits: int) -> int:
    """Number of angle parameters of the embedding of ``2**num_qubits`` amplitudes."""
    return 2**num_qubits - 1


def _gray(i: int) -> int:
    return i ^ (i >> 1)


def _flip_bit(i: int, num_controls: int) -> int:
    """Which control's CNOT follows gate ``i`` of the Gray-code sequence."""
    if i == 2**num_controls - 1:  # closing the cycle: gray(2**k - 1) -> gray(0) flips the top bit
        return num_controls - 1
    return ((i + 1) & -(i + 1)).bit_length() - 1  # lowest set bit of i + 1


def multiplexer_matrix(num_controls: int) -> np.ndarray:
    """Matrix ``A`` with ``gate_angles = tree_angles @ A`` for one multiplexer.

    For control value ``j`` (bit ``b`` of ``j`` is control ``b``), the target sees
    ``RY(sum_i (-1)**popcount(j & gray(i)) * phi_i)``; that sign matrix ``M`` is orthogonal up to
    ``2**k``, so ``phi = a @ M / 2**k``.

    Args:
        num_controls: number of control qubits ``k``.

    Returns:
        A ``(2**k, 2**k)`` float array.
    """
    size = 2**num_controls
    j = np.arange(size)[:, None]
    g = np.array([_gray(i) for i in range(size)])[None, :]
    parity = np.vectorize(lambda v: bin(v).count("1") & 1)(j & g)
    return (1.0 - 2.0 * parity) / size


def amplitude_embedding(
    num_qubits: int, *, name: str = "x", parameters: ParameterVector | None = None
) -> QuantumCircuit:
    """The parameterized RY-tree state preparation on ``num_qubits`` qubits.

    With the angles of :func:`qmae_qiskit.angles.embedding_angles` bound, the circuit maps
    ``|0...0>`` to ``x / ||x||`` for any real ``x`` (signs are carried by the last level).

    Args:
        num_qubits: number of qubits ``n`` (the vector has ``2**n`` entries).
        name: name of the :class:`ParameterVector` created when ``parameters`` is not given.
        parameters: a vector of ``2**n - 1`` parameters to use instead of a new one.

    Returns:
        A circuit on ``n`` qubits with ``2**n - 1`` parameters, ``2**n - 2`` CNOTs.

    Raises:
        ValueError: ``num_qubits < 1`` or ``parameters`` of the wrong length.
    """
    if num_qubits < 1:
        raise ValueError(f"num_qubits must be >= 1, got {num_qubits}")
    size = num_embedding_parameters(num_qubits)
    if parameters is None:
        parameters = ParameterVector(name, size)
    if len(parameters) != size:
        raise ValueError(f"need {size} embedding parameters for {num_qubits} qubits, got {len(parameters)}")
    qc = QuantumCircuit(num_qubits, name="embed")
    for level in range(num_qubits):
        target = num_qubits - 1 - level
        controls = list(range(num_qubits - level, num_qubits))  # bit b of the control value <-> controls[b]
        offset = 2**level - 1
        for i in range(2**level):
            qc.ry(parameters[offset + i], target)
            if level:
                qc.cx(controls[_flip_bit(i, level)], target)
    return qc


def ladder_embedding(
    num_qubits: int, layers: int, *, name: str = "x", parameters: ParameterVector | None = None
) -> QuantumCircuit:
    """The approximate embedding: ``layers`` x [RY on every qubit, CX(q, q+1) down a line], then RY.

    With the angles of :func:`qmae_qiskit.approx_embedding.fit_ladder` bound, it prepares a state
    close to the image using ``layers * (num_qubits - 1)`` CNOTs between neighbours on a line.

    Args:
        num_qubits: number of qubits ``n``.
        layers: CNOT layers ``L >= 1``.
        name: name of the :class:`ParameterVector` created when ``parameters`` is not given.
        parameters: ``(L + 1) * n`` parameters, layer-major (parameter ``l * n + q`` is the RY of
            qubit ``q`` in layer ``l``).

    Returns:
        A circuit on ``n`` qubits.

    Raises:
        ValueError: ``num_qubits < 2``, ``layers < 1`` or ``parameters`` of the wrong length.
    """
    if num_qubits < 2 or layers < 1:
        raise ValueError(f"a ladder needs >= 2 qubits and >= 1 layer, got {num_qubits} qubits, {layers} layers")
    size = (layers + 1) * num_qubits
    if parameters is None:
        parameters = ParameterVector(name, size)
    if len(parameters) != size:
        raise ValueError(
            f"need {size} ladder parameters for {num_qubits} qubits and {layers} layers, got {len(parameters)}"
        )
    qc = QuantumCircuit(num_qubits, name="ladder")
    for layer in range(layers + 1):
        for q in range(num_qubits):
            qc.ry(parameters[layer * num_qubits + q], q)
        if layer < layers:
            for q in range(num_qubits - 1):
                qc.cx(q, q + 1)
    return qc
