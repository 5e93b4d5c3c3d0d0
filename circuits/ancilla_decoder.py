"""The ancilla-assisted decoder as a circuit: the stage ``W(omega)`` on the data and ``aux`` qubits.

After the decoder, ``A`` fresh ``aux`` qubits (in ``|0>``) join the ``n`` data qubits and the stage
``W`` (two-qubit blocks on ``n + A`` qubits, weights ``omega``) acts on all of them; the shots
where the ``aux`` qubits read 0 are kept. The torch side (its starting weights and its action in the
exact engine) is :mod:`qmae_qiskit.engines.ancilla_decoder`.
"""

from __future__ import annotations

from collections.abc import Sequence

from qiskit.circuit import ParameterVector, QuantumCircuit, QuantumRegister

from .ansatz import BLOCK_PARAMETERS, all_pairs, encoder, validate_pairs

__all__ = ["AncillaStage"]


class AncillaStage:
    """The stage ``W(omega)`` of ``ancillas`` aux qubits for ``num_qubits`` data qubits.

    Args:
        num_qubits: data qubits ``n``.
        ancillas: ``A >= 1``.
        pairs: the stage's pairs on ``n + A`` qubits (default: all pairs).

    Raises:
        ValueError: invalid pairs.
    """

    def __init__(self, num_qubits: int, ancillas: int, pairs: Sequence[Sequence[int]] | None = None) -> None:
        wide = num_qubits + ancillas
        stage_pairs = validate_pairs(all_pairs(wide) if pairs is None else pairs, wide)
        self.ancillas = ancillas
        self.weights = ParameterVector("ω", BLOCK_PARAMETERS * len(stage_pairs))
        self.circuit = encoder(wide, pairs=stage_pairs, parameters=self.weights)

    def append(self, qc: QuantumCircuit, data: QuantumRegister) -> QuantumRegister:
        """Add the ``aux`` register to ``qc`` and the stage on ``data`` + ``aux``; returns ``aux``."""
        aux = QuantumRegister(self.ancillas, "aux")
        qc.add_register(aux)
        qc.compose(self.circuit, list(data) + list(aux), inplace=True)
        return aux
