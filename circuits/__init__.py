"""Pure-Qiskit circuit templates of the QMAE (no torch, no I/O).

Installed as ``qmae_qiskit.circuits``.
"""

from .ansatz import (
    BLOCK_PARAMETERS,
    PAIR_SETS,
    all_pairs,
    decoder,
    encoder,
    line_pairs,
    named_pairs,
    two_qubit_block,
    validate_pairs,
)
from .embedding import amplitude_embedding, ladder_embedding, multiplexer_matrix, num_embedding_parameters
from .fidelity import (
    VARIANTS,
    FidelityCircuit,
    fidelity_circuit,
    fidelity_from_counts,
    reconstruction_circuit,
    resolve_trash_qubits,
)

__all__ = [
    "BLOCK_PARAMETERS",
    "VARIANTS",
    "FidelityCircuit",
    "all_pairs",
    "line_pairs",
    "named_pairs",
    "PAIR_SETS",
    "amplitude_embedding",
    "ladder_embedding",
    "decoder",
    "encoder",
    "fidelity_circuit",
    "fidelity_from_counts",
    "reconstruction_circuit",
    "multiplexer_matrix",
    "num_embedding_parameters",
    "resolve_trash_qubits",
    "two_qubit_block",
    "validate_pairs",
]
