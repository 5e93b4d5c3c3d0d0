import numpy as np
import pytest
import torch
from qiskit.quantum_info import Operator

from qmae_qiskit.circuits import all_pairs, decoder, encoder, two_qubit_block
from qmae_qiskit.engines.exact import ExactEngine, block_matrices


def test_block_gate_counts():
    ops = two_qubit_block().count_ops()
    assert (ops["rz"], ops["ry"], ops["cx"]) == (9, 6, 3)
    assert two_qubit_block().num_parameters == 15


def test_encoder_has_paper_parameter_count():
    assert encoder(8).num_parameters == 420  # Eq. 3: 28 pairs x 15
    assert len(all_pairs(8)) == 28


def test_block_matrix_matches_qiskit_operator():
    theta = torch.rand(3, 15, dtype=torch.float64) * 6.3
    mats = block_matrices(theta, torch.complex128)
    for row, mat in zip(theta, mats):
        expected = Operator(two_qubit_block(row.tolist())).data
        np.testing.assert_allclose(mat.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("pairs", [None, [(1, 0), (2, 3), (0, 3)]])
def test_exact_unitary_matches_qiskit_encoder(pairs):
    n = 4
    circ = encoder(n, pairs=pairs)
    theta = torch.rand(circ.num_parameters, dtype=torch.float64) * 6.3
    engine = ExactEngine(n, pairs or all_pairs(n), (0,), dtype=torch.complex128)
    expected = Operator(circ.assign_parameters(theta.tolist())).data
    np.testing.assert_allclose(engine.unitary(theta).numpy(), expected, atol=1e-12)


def test_decoder_is_inverse_with_same_parameters():
    enc = encoder(3)
    dec = decoder(enc)
    assert set(dec.parameters) == set(enc.parameters)
    values = np.random.default_rng(0).random(enc.num_parameters)
    u = Operator(enc.assign_parameters(values)).data
    ud = Operator(dec.assign_parameters(dict(zip(enc.parameters, values)))).data
    np.testing.assert_allclose(ud @ u, np.eye(8), atol=1e-12)


def test_invalid_pairs_are_rejected():
    with pytest.raises(ValueError, match="pair"):
        encoder(3, pairs=[(0, 0)])
    with pytest.raises(ValueError, match="pair"):
        encoder(3, pairs=[(0, 5)])
