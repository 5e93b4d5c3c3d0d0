import numpy as np
import pytest
import torch
from qiskit.quantum_info import Statevector

from qmae_qiskit.angles import embedding_angles
from qmae_qiskit.circuits import amplitude_embedding, multiplexer_matrix


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8])
def test_embedding_prepares_normalized_vector(n):
    rng = np.random.default_rng(n)
    x = rng.random(2**n)
    x[: 2**n // 3] = 0.0  # a black region: whole zero sub-trees
    ang = embedding_angles(torch.tensor(x[None]))[0].numpy()
    qc = amplitude_embedding(n)
    assert qc.num_parameters == 2**n - 1
    state = Statevector(qc.assign_parameters(ang)).data
    np.testing.assert_allclose(state, x / np.linalg.norm(x), atol=1e-12)


def test_embedding_handles_signed_amplitudes():
    x = np.array([0.3, -0.2, 0.0, 0.5, -0.1, 0.0, 0.0, 0.7])
    ang = embedding_angles(torch.tensor(x[None]))[0].numpy()
    state = Statevector(amplitude_embedding(3).assign_parameters(ang)).data
    np.testing.assert_allclose(state, x / np.linalg.norm(x), atol=1e-12)


def test_embedding_gate_counts_at_eight_qubits():
    ops = amplitude_embedding(8).count_ops()
    assert ops["ry"] == 255 and ops["cx"] == 254


def test_multiplexer_matrix_is_scaled_orthogonal():
    for k in range(5):
        a = multiplexer_matrix(k)
        np.testing.assert_allclose(a @ a.T * 2**k, np.eye(2**k), atol=1e-12)


def test_angles_and_gradients_are_finite_on_black_images(mnist16):
    x = mnist16.flatten(1).double().clone().requires_grad_(True)
    ang = embedding_angles(x)
    assert torch.isfinite(ang).all()
    ang.sin().sum().backward()
    assert torch.isfinite(x.grad).all()
    zero = torch.zeros(1, 16, dtype=torch.float64, requires_grad=True)
    out = embedding_angles(zero)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(zero.grad).all()


def test_angle_map_rejects_bad_shapes():
    with pytest.raises(ValueError, match="2\\*\\*n"):
        embedding_angles(torch.zeros(2, 12))
