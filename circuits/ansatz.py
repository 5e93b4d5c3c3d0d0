"""The encoder U(theta) and decoder U(theta)^dagger of the paper (section 3.2, Fig. 3, Eq. 3).

The two-qubit block is the 15-parameter general two-qubit circuit used by Wang et al. (2024):
a ZYZ rotation on each qubit, three CNOTs with RZ / RY between them, and a ZYZ rotation on each
qubit again: 9 RZ, 6 RY, 3 CX. The encoder applies one block to every pair of qubits in ``pairs``
(all ``n(n-1)/2`` pairs ``i < j`` by default, in lexicographic order).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from qiskit.circuit import ParameterVector, QuantumCircuit

__all__ = ["BLOCK_PARAMETERS", "all_pairs", "two_qubit_block", "encoder", "decoder", "validate_pairs"]

BLOCK_PARAMETERS = 15


def all_pairs(num_qubits: int) -> list[tuple[int, int]]:
    """Every pair ``(i, j)`` with ``i < j`` of ``num_qubits`` qubits, lexicographically."""
    return list(combinations(range(num_qubits), 2))


PAIR_SETS = ("all", "line", "line2")


def line_pairs(num_qubits: int, repeats: int = 1) -> list[tuple[int, int]]:
    """Neighbours on a line, ``(0, 1), (1, 2), ..., (n-2, n-1)``, ``repeats`` times.

    A line is a subgraph of every IBM coupling map (heavy-hex included), so this encoder routes
    without SWAPs: ``3 * (n - 1) * repeats`` CNOTs instead of the all-pairs encoder's ``3 n(n-1)/2``
    plus routing.
    """
    return [(q, q + 1) for q in range(num_qubits - 1)] * repeats


def named_pairs(name: str, num_qubits: int) -> list[tuple[int, int]]:
    """The pair set called ``name``: ``"all"`` (the paper's), ``"line"`` or ``"line2"`` (the line twice).

    Raises:
        ValueError: an unknown name.
    """
    if name == "all":
        return all_pairs(num_qubits)
    if name in ("line", "line2"):
        return line_pairs(num_qubits, 2 if name == "line2" else 1)
    raise ValueError(
        f"unknown pair set {name!r}; choose one of {', '.join(PAIR_SETS)} (or pass explicit pairs in Python)"
    )


def validate_pairs(pairs: Sequence[Sequence[int]], num_qubits: int) -> list[tuple[int, int]]:
    """Check a pair list and return it as a list of int tuples.

    Raises:
        ValueError: a pair that is not two distinct qubits in ``0..num_qubits-1``, or no pairs.
    """
    out = []
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1] or not all(0 <= int(q) < num_qubits for q in pair):
            raise ValueError(f"invalid qubit pair {tuple(pair)}: a pair is two different qubits in 0..{num_qubits - 1}")
        out.append((int(pair[0]), int(pair[1])))
    if not out:
        raise ValueError("the encoder needs at least one qubit pair")
    return out


def _zyz(qc: QuantumCircuit, p: Sequence, qubit: int) -> None:
    qc.rz(p[0], qubit)
    qc.ry(p[1], qubit)
    qc.rz(p[2], qubit)


def two_qubit_block(parameters: Sequence | None = None) -> QuantumCircuit:
    """The 15-parameter two-qubit block (paper Fig. 3) on qubits 0 and 1.

    Args:
        parameters: 15 parameters (or numbers); a new ``ParameterVector("p", 15)`` if omitted.

    Returns:
        A 2-qubit circuit with 9 RZ, 6 RY and 3 CX gates.
    """
    p = ParameterVector("p", BLOCK_PARAMETERS) if parameters is None else parameters
    if len(p) != BLOCK_PARAMETERS:
        raise ValueError(f"the block takes {BLOCK_PARAMETERS} parameters, got {len(p)}")
    qc = QuantumCircuit(2, name="block")
    _zyz(qc, p[0:3], 0)
    _zyz(qc, p[3:6], 1)
    qc.cx(1, 0)
    qc.rz(p[6], 0)
    qc.ry(p[7], 1)
    qc.cx(0, 1)
    qc.ry(p[8], 1)
    qc.cx(1, 0)
    _zyz(qc, p[9:12], 0)
    _zyz(qc, p[12:15], 1)
    return qc


def encoder(
    num_qubits: int,
    *,
    pairs: Sequence[Sequence[int]] | None = None,
    parameters: ParameterVector | None = None,
    name: str = "θ",
) -> QuantumCircuit:
    """The encoder U(theta): one two-qubit block on each pair, ``15 * len(pairs)`` parameters.

    Args:
        num_qubits: number of data qubits ``n``.
        pairs: the qubit pairs, in order; all pairs ``i < j`` if omitted (420 parameters at n = 8).
        parameters: the weight vector to use; a new ``ParameterVector(name, ...)`` if omitted.
        name: name of the new parameter vector.

    Returns:
        The encoder circuit on ``n`` qubits.

    Raises:
        ValueError: invalid pairs or a parameter vector of the wrong length.
    """
    pairs = validate_pairs(all_pairs(num_qubits) if pairs is None else pairs, num_qubits)
    size = BLOCK_PARAMETERS * len(pairs)
    if parameters is None:
        parameters = ParameterVector(name, size)
    if len(parameters) != size:
        raise ValueError(f"the encoder on {len(pairs)} pairs takes {size} parameters, got {len(parameters)}")
    qc = QuantumCircuit(num_qubits, name="U")
    for k, (i, j) in enumerate(pairs):
        block = two_qubit_block(parameters[BLOCK_PARAMETERS * k : BLOCK_PARAMETERS * (k + 1)])
        qc.compose(block, [i, j], inplace=True)
    return qc


def decoder(encoder_circuit: QuantumCircuit) -> QuantumCircuit:
    """The decoder U(theta)^dagger: the encoder's inverse, with the same parameters."""
    qc = encoder_circuit.inverse()
    qc.name = "U†"
    return qc
