"""Where the latent features are measured on a device (issue 23): the encoder's latent qubits read
in Pauli bases.

:meth:`~qmae_qiskit.QMAE.features` gives the expectation values of the 1- and 2-local Pauli
observables on the latent qubits of ``U |psi>`` exactly. A device estimates them from counts:
:func:`features_circuit` embeds the image, applies the encoder U and rotates every latent qubit
into a measurement basis with two *parameterized* gates (``RX(a) RY(b)``), so that every basis is
a parameter binding of one transpiled circuit (one PUB) rather than a circuit of its own.
:func:`measurement_bases` picks the bases: for 1-local features all-X, all-Y and all-Z; for 2-local
ones a covering set in which every pair of latent qubits is measured in each of the 9 pairs of
Paulis (15 bases for 7 latent qubits, where measuring each observable on its own would take 189).
:func:`features_from_counts` turns the counts (or mthree's quasi-probabilities) of those bases
into the features and their standard errors, pooling every basis that measures an observable.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from itertools import combinations, product

import numpy as np
from qiskit.circuit import ClassicalRegister, ParameterVector, QuantumCircuit, QuantumRegister

from .fidelity import FidelityCircuit, _Parts

__all__ = [
    "FEATURES",
    "FEATURE_KINDS",
    "basis_angles",
    "features_circuit",
    "features_from_counts",
    "measurement_bases",
]

FEATURES = "features"  # the variant name of features_circuit's template and of its job records
FEATURE_KINDS = ("pauli2", "pauli1")  # as QMAE.features and metrics.pauli_labels take them
# RX(a) then RY(b) turns the Pauli's eigenbasis into Z's: RY(-pi/2) takes +X to +Z, RX(pi/2) takes +Y to +Z
_ANGLES = {"X": (0.0, -math.pi / 2), "Y": (math.pi / 2, 0.0), "Z": (0.0, 0.0)}


def features_circuit(
    num_qubits: int,
    *,
    latent_qubits: int | None = None,
    trash_qubits: Sequence[int] | None = None,
    pairs: Sequence[Sequence[int]] | None = None,
    embedding_layers: int | None = None,
) -> FidelityCircuit:
    """The features circuit (``n`` qubits): embed the image, apply U, rotate each latent qubit into
    its basis (parameters ``basis``: ``RX(basis[2j]) RY(basis[2j + 1])`` on the ``j``-th latent
    qubit), measure the latent qubits (``c[j]``: the ``j``-th latent qubit; the trash is not measured).

    Args:
        num_qubits, latent_qubits, trash_qubits, pairs, embedding_layers: as
            :func:`~qmae_qiskit.circuits.fidelity_circuit` takes them.

    Returns:
        A :class:`~qmae_qiskit.circuits.FidelityCircuit` with ``variant`` :data:`FEATURES`; the
        image's embedding parameters are ``masked`` (the encoder's input, masked or not), ``basis``
        the measurement angles (:func:`basis_angles`), ``original`` unused.

    Raises:
        ValueError: as :func:`~qmae_qiskit.circuits.fidelity_circuit` does.
    """
    parts = _Parts(num_qubits, trash_qubits, latent_qubits, pairs, embedding_layers, "tied")
    latent = [q for q in range(parts.n) if q not in parts.trash]
    data = QuantumRegister(parts.n, "data")
    creg = ClassicalRegister(len(latent), "c")
    basis = ParameterVector("β", 2 * len(latent))
    qc = QuantumCircuit(data, creg, name=f"qmae_{FEATURES}")
    qc.compose(parts.embed(parts.masked), data, inplace=True)
    qc.compose(parts.encoder, data, inplace=True)
    for j, q in enumerate(latent):
        qc.rx(basis[2 * j], data[q])
        qc.ry(basis[2 * j + 1], data[q])
    qc.measure([data[q] for q in latent], creg)
    return dataclasses.replace(parts.result(qc, FEATURES), basis=basis)


def basis_angles(basis: str) -> list[float]:
    """The ``basis`` parameters of :func:`features_circuit` for a basis string (one of X, Y, Z per
    latent qubit, the ``j``-th letter for the ``j``-th latent qubit).

    Raises:
        ValueError: a letter other than X, Y, Z.
    """
    if not basis or set(basis) - set(_ANGLES):
        raise ValueError(f"a measurement basis is a string of X, Y and Z (one per latent qubit), got {basis!r}")
    return [angle for letter in basis for angle in _ANGLES[letter]]


@functools.cache
def _covering(num_latent: int, restarts: int, candidates: int) -> tuple[str, ...]:
    """The smallest of ``restarts`` seeded greedy coverings (see :func:`measurement_bases`)."""
    pairs = list(combinations(range(num_latent), 2))

    def covers(basis: str) -> set[tuple[int, int, str, str]]:
        return {(i, j, basis[i], basis[j]) for i, j in pairs}

    best: list[str] | None = None
    for seed in range(restarts):
        needed = {(i, j, p, q) for i, j in pairs for p, q in product("XYZ", repeat=2)}
        rng = np.random.default_rng(seed)
        bases: list[str] = []
        while needed:
            pool = ["".join(rng.choice(list("XYZ"), num_latent)) for _ in range(candidates)]
            i, j, p, q = min(needed)  # a basis for one missing pair: progress however the pool falls
            pool.append("".join(p if m == i else q if m == j else "Z" for m in range(num_latent)))
            choice = max(pool, key=lambda b: len(covers(b) & needed))
            bases.append(choice)
            needed -= covers(choice)
        if best is None or len(bases) < len(best):
            best = bases
    assert best is not None
    return tuple(best)


def measurement_bases(num_latent: int, kind: str = "pauli2") -> list[str]:
    """Bases (strings of X, Y, Z; the ``j``-th letter for the ``j``-th latent qubit) that together
    measure every observable of ``kind``.

    ``"pauli1"``: all-X, all-Y, all-Z. ``"pauli2"``: a covering array of strength 2, bases in which
    every pair of latent qubits is measured in each of the 9 pairs of Paulis (which measures every
    single-qubit Pauli too), built greedily (each basis the random candidate that measures the most
    pairs not yet measured; the smallest of 8 seeded restarts, the same list every time): 15 bases
    for 7 latent qubits, 9 for 3, against 3k + 9k(k-1)/2 observables (210 for k = 7). Greedy, so
    not always the smallest covering that exists.

    Raises:
        ValueError: ``num_latent < 1`` or an unknown ``kind``.
    """
    if kind not in FEATURE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FEATURE_KINDS)}, got {kind!r}")
    if num_latent < 1:
        raise ValueError(f"num_latent must be >= 1, got {num_latent}")
    if kind == "pauli1" or num_latent == 1:
        return [p * num_latent for p in "XYZ"]
    return list(_covering(num_latent, 8, 400))


def _observables(num_latent: int, kind: str) -> list[dict[int, str]]:
    """The observables in :func:`~qmae_qiskit.metrics.pauli_labels`' order, as ``{latent position: Pauli}``."""
    out = [{j: p} for j in range(num_latent) for p in "XYZ"]
    if kind == "pauli2":
        out += [{i: p, j: q} for i, j in combinations(range(num_latent), 2) for p in "XYZ" for q in "XYZ"]
    return out


def features_from_counts(
    counts: Sequence[Mapping[str, float]],
    bases: Sequence[str],
    kind: str = "pauli2",
    *,
    overheads: Sequence[float] | None = None,
    shots: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The features of one image and their standard errors, from its counts in each basis.

    Every observable is the mean over the shots of every basis that measures it (the product of
    the ``+1`` / ``-1`` outcomes of its qubits), pooled by shots; its standard error is the
    binomial one of that mean. Quasi-probabilities (mthree's readout correction) work too: pass the
    shots they came from and mthree's mitigation overhead, which multiplies the variance.

    Args:
        counts: one counts mapping per basis, keys bit strings with ``c[0]`` (the first latent
            qubit) rightmost.
        bases: the bases, in the same order (:func:`measurement_bases`).
        kind: ``"pauli2"`` or ``"pauli1"``.
        overheads: per basis, the factor by which mitigation grew the variance (default 1).
        shots: per basis, the shots behind the mapping (default: the sum of its values).

    Returns:
        ``(values, stderr)``, each ``(F,)`` in :func:`~qmae_qiskit.metrics.pauli_labels`' order.

    Raises:
        ValueError: not one mapping per basis, or bases that leave an observable unmeasured.
    """
    if len(counts) != len(bases):
        raise ValueError(f"one counts mapping per basis: got {len(counts)} for {len(bases)} bases")
    k = len(bases[0])
    per_basis = []  # (+1/-1 outcome of each latent qubit per key, normalized weights, shots, overhead)
    for b, c in enumerate(counts):
        keys = list(c)
        bits = np.array([[int(ch) for ch in key.replace(" ", "")[::-1][:k]] for key in keys]).reshape(len(keys), k)
        weights = np.array([float(c[key]) for key in keys])
        total = float(weights.sum())
        n = float(shots[b]) if shots is not None else total
        per_basis.append((1 - 2 * bits, weights / (total if total else 1.0), n, overheads[b] if overheads else 1.0))
    values, errors = [], []
    for obs in _observables(k, kind):
        means, sizes, inflation = [], [], []
        for basis, (signs, weights, n, overhead) in zip(bases, per_basis):
            if all(basis[j] == p for j, p in obs.items()):
                means.append(float((np.prod(signs[:, list(obs)], axis=1) * weights).sum()))
                sizes.append(n)
                inflation.append(overhead)
        total_shots = float(sum(sizes))
        if total_shots <= 0:
            raise ValueError(f"no basis measures {obs} (bases {list(bases)})")
        mean = min(max(sum(m * n for m, n in zip(means, sizes)) / total_shots, -1.0), 1.0)
        variance = sum(n * o for n, o in zip(sizes, inflation)) * max(1.0 - mean * mean, 0.0) / total_shots**2
        values.append(mean)
        errors.append(math.sqrt(variance))
    return np.array(values), np.array(errors)
