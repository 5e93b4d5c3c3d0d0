"""Pure-Qiskit circuit templates of the QMAE (no torch, no I/O).

Installed as ``qmae_qiskit.circuits``: the amplitude embedding (:mod:`.embedding`), the
15-parameter block with the encoder and decoder (:mod:`.ansatz`), the whole circuit in its
variants (:mod:`.fidelity`), and the latent qubits measured in Pauli bases (:mod:`.features`).
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
from .embedding import (
    MAX_QUBITS,
    amplitude_embedding,
    check_num_qubits,
    image_qubits,
    ladder_embedding,
    multiplexer_matrix,
    num_embedding_parameters,
)
from .features import (
    FEATURE_KINDS,
    FEATURES,
    basis_angles,
    features_circuit,
    features_from_counts,
    measurement_bases,
)
from .fidelity import (
    CIRCUIT_VARIANTS,
    DECODERS,
    ESTIMATOR_VARIANT,
    POSTSELECTED_VARIANTS,
    RECONSTRUCTION,
    RECONSTRUCTION_POSTSELECT,
    RECONSTRUCTION_POSTSELECT_FLAG,
    RECONSTRUCTION_VARIANTS,
    VARIANTS,
    FidelityCircuit,
    estimator_circuit,
    fidelity_circuit,
    fidelity_from_counts,
    keep_fraction_from_counts,
    reconstruction_circuit,
    resolve_trash_qubits,
)

__all__ = [
    "FEATURES",
    "FEATURE_KINDS",
    "basis_angles",
    "features_circuit",
    "features_from_counts",
    "measurement_bases",
    "BLOCK_PARAMETERS",
    "CIRCUIT_VARIANTS",
    "DECODERS",
    "ESTIMATOR_VARIANT",
    "POSTSELECTED_VARIANTS",
    "RECONSTRUCTION_POSTSELECT",
    "RECONSTRUCTION_POSTSELECT_FLAG",
    "RECONSTRUCTION_VARIANTS",
    "keep_fraction_from_counts",
    "MAX_QUBITS",
    "PAIR_SETS",
    "RECONSTRUCTION",
    "VARIANTS",
    "FidelityCircuit",
    "all_pairs",
    "amplitude_embedding",
    "check_num_qubits",
    "decoder",
    "encoder",
    "estimator_circuit",
    "fidelity_circuit",
    "fidelity_from_counts",
    "image_qubits",
    "ladder_embedding",
    "line_pairs",
    "multiplexer_matrix",
    "named_pairs",
    "num_embedding_parameters",
    "reconstruction_circuit",
    "resolve_trash_qubits",
    "two_qubit_block",
    "validate_pairs",
]
