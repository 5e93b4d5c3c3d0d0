"""The exact engine's fast paths agree with each other (the Qiskit pins are in test_equivalence.py)."""

import pytest
import torch

from qmae_qiskit.circuits.ansatz import all_pairs
from qmae_qiskit.engines.exact import ExactEngine, fuse_pairs


@pytest.mark.parametrize("width", [2, 3, 4, 5, 6])
def test_every_fusion_width_gives_the_same_unitary(width):
    torch.manual_seed(0)
    theta = torch.randn(15 * 28, dtype=torch.float64)
    ref = ExactEngine(6 + 2, all_pairs(8), (7,), dtype=torch.complex128, fuse_width=2).unitary(theta)
    got = ExactEngine(8, all_pairs(8), (7,), dtype=torch.complex128, fuse_width=width).unitary(theta)
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=0)
    eye = torch.eye(256, dtype=torch.complex128)
    torch.testing.assert_close(got @ got.conj().T, eye, atol=1e-12, rtol=0)


def test_fusion_covers_every_block_once_in_order():
    pairs = [(3, 0), (0, 1), (5, 2), (1, 4), (2, 3), (4, 5), (0, 5)]
    groups = fuse_pairs(6, pairs, 4)
    assert [k for _, blocks in groups for k in blocks] == list(range(len(pairs)))
    for qubits, blocks in groups:
        assert len(qubits) == 4 == len(set(qubits))
        assert all(set(pairs[k]) <= set(qubits) for k in blocks)


def test_small_and_large_batches_take_different_paths_to_the_same_fidelity():
    torch.manual_seed(1)
    engine = ExactEngine(4, all_pairs(4), (3,), dtype=torch.complex128)
    theta = torch.randn(90, dtype=torch.float64)
    x = torch.rand(20, 16, dtype=torch.float64)  # 2 * 20 > 16: builds U
    y = torch.rand(20, 16, dtype=torch.float64)
    big = engine.fidelity(theta, x, y)
    small = torch.cat([engine.fidelity(theta, x[i : i + 4], y[i : i + 4]) for i in range(0, 20, 4)])  # applies gates
    torch.testing.assert_close(big, small, atol=1e-12, rtol=0)


def test_bad_fusion_width_is_a_clear_error():
    with pytest.raises(ValueError, match="fuse_width must be in 2..4"):
        ExactEngine(4, all_pairs(4), (3,), fuse_width=7)
