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


@pytest.mark.parametrize("pairs", [[(3, 0), (0, 1), (5, 2), (1, 4), (2, 3), (4, 5), (0, 5)], all_pairs(6)])
def test_fusion_covers_every_block_once_keeping_every_dependency(pairs):
    groups = fuse_pairs(6, pairs, 4)
    order = [k for _, blocks in groups for k in blocks]
    assert sorted(order) == list(range(len(pairs)))
    position = {k: i for i, k in enumerate(order)}
    for j in range(len(pairs)):  # blocks sharing a qubit keep their circuit order
        for k in range(j + 1, len(pairs)):
            if set(pairs[j]) & set(pairs[k]):
                assert position[j] < position[k], (pairs[j], pairs[k])
    for qubits, blocks in groups:
        assert len(qubits) == 4 == len(set(qubits))
        assert all(set(pairs[k]) <= set(qubits) for k in blocks)


def test_fusion_reorders_commuting_blocks_into_fewer_super_gates():
    assert len(fuse_pairs(8, all_pairs(8), 5)) == 4  # cutting the listing into runs gives 6
    assert len(fuse_pairs(8, all_pairs(8), 4)) == 8  # ... and 10


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


def test_postselected_reconstruction_matches_qiskit_statevector():
    import numpy as np
    from qiskit.quantum_info import Statevector

    from qmae_qiskit import QMAE
    from qmae_qiskit.angles import embedding_angles
    from qmae_qiskit.circuits import amplitude_embedding, decoder, encoder

    torch.manual_seed(3)
    model = QMAE(image_size=4, patch_size=(2, 2), seed=3)
    image = torch.rand(1, 4, 4)
    mask = model.random_mask(1, generator=torch.Generator().manual_seed(0))
    got = model.reconstruct(image, mask, postselect=True).detach().square().flatten().double().numpy()

    angles = embedding_angles(model.fill(image, mask).detach().flatten(1).double())[0].numpy()
    emb = amplitude_embedding(4)
    enc = encoder(4, pairs=model.pairs)
    theta = dict(
        zip(
            enc.parameters,
            model.theta.detach().double().numpy()[[int(p.name.split("[")[1][:-1]) for p in enc.parameters]],
        )
    )
    state = Statevector(
        emb.assign_parameters(
            dict(zip(emb.parameters, angles[[int(p.name.split("[")[1][:-1]) for p in emb.parameters]]))
        )
    )
    state = state.evolve(enc.assign_parameters(theta))
    amps = state.data.copy()
    for t in model.trash_qubits:  # keep the trash = 0 branch
        amps[(np.arange(16) >> t) & 1 == 1] = 0
    out = Statevector(amps / np.linalg.norm(amps)).evolve(decoder(enc).assign_parameters(theta))
    np.testing.assert_allclose(got, out.probabilities(), atol=1e-6)


# The engine's autograd Functions have hand-written backwards: gradcheck each against finite
# differences in float64, on every path a training step takes.
def test_block_matrices_backward_matches_finite_differences():
    from qmae_qiskit.engines.exact import block_matrices

    theta = torch.randn(3, 15, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: torch.view_as_real(block_matrices(t, torch.complex128)), (theta,))


@pytest.mark.parametrize("width", [2, 4])
def test_unitary_and_apply_backwards_match_finite_differences(width):
    engine = ExactEngine(4, all_pairs(4), (3,), dtype=torch.complex128, fuse_width=width)
    theta = torch.randn(90, dtype=torch.float64, requires_grad=True)
    states = torch.randn(16, 3, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: torch.view_as_real(engine.unitary(t)), (theta,))
    assert torch.autograd.gradcheck(lambda t: torch.view_as_real(engine.unitary_transpose(t)), (theta,))
    assert torch.autograd.gradcheck(lambda t, s: torch.view_as_real(engine.apply_left(t, s)), (theta, states))
    torch.testing.assert_close(engine.unitary_transpose(theta), engine.unitary(theta).T, atol=1e-12, rtol=0)


@pytest.mark.parametrize("trash", [(3,), (0, 2)])
@pytest.mark.parametrize("batch", [2, 12])  # 2 * 2 <= 16 applies the gates, 2 * 12 > 16 builds U
def test_fidelity_backward_matches_finite_differences(trash, batch):
    engine = ExactEngine(4, all_pairs(4), trash, dtype=torch.complex128)
    theta = torch.randn(90, dtype=torch.float64, requires_grad=True)
    x = torch.rand(batch, 16, dtype=torch.float64, requires_grad=True)
    y = torch.rand(batch, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, a, b: engine.fidelity(t, a, b, with_trash=True), (theta, x, y))


@pytest.mark.parametrize("untied", [False, True])
@pytest.mark.parametrize("batch", [2, 12])
def test_branches_backward_matches_finite_differences(batch, untied):
    """F, joint and kept (the post-selected objective's pieces), tied and untied decoders, on both paths."""
    engine = ExactEngine(4, all_pairs(4), (2, 3), dtype=torch.complex128)
    theta = torch.randn(90, dtype=torch.float64, requires_grad=True)
    dec = torch.randn(90, dtype=torch.float64, requires_grad=True)
    x = torch.rand(batch, 16, dtype=torch.float64, requires_grad=True)
    y = torch.rand(batch, 16, dtype=torch.float64, requires_grad=True)

    def run(t, d, a, b):
        return tuple(engine.branches(t, a, b, decoder=d if untied else None))[:3]  # accepted: None without ancillas

    assert torch.autograd.gradcheck(run, (theta, dec, x, y))


def test_branches_are_consistent_and_the_tied_decoder_is_the_untied_one_with_equal_weights():
    torch.manual_seed(4)
    engine = ExactEngine(4, all_pairs(4), (3,), dtype=torch.complex128)
    theta = torch.randn(90, dtype=torch.float64)
    x, y = torch.rand(20, 16, dtype=torch.float64), torch.rand(20, 16, dtype=torch.float64)
    b = engine.branches(theta, x, y)
    assert (b.joint <= b.fidelity + 1e-12).all() and (b.joint <= b.kept + 1e-12).all()
    assert ((b.postselected >= 0) & (b.postselected <= 1 + 1e-12)).all()
    same = engine.branches(theta, x, y, decoder=theta.clone())
    for got, want in zip(same[:3], b[:3]):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    other = engine.branches(theta, x, y, decoder=torch.randn(90, dtype=torch.float64))
    assert not torch.allclose(other.fidelity, b.fidelity)
    torch.testing.assert_close(other.kept, b.kept)  # the decoder does not change what the trash holds


def test_unitary_ansatz_is_a_unitary_that_reproduces_any_circuit():
    """The ceiling's U = exp(K): unitary, differentiable, and when K is the log of a blocks circuit's
    U it gives that circuit's fidelities (so the bound covers every circuit of the architecture)."""
    from qmae_qiskit.engines.exact import unitary_from_generator

    torch.manual_seed(5)
    blocks = ExactEngine(4, all_pairs(4), (3,), dtype=torch.complex128)
    theta = torch.randn(90, dtype=torch.float64)
    u = blocks.unitary(theta).detach()
    vals, vecs = torch.linalg.eig(u)  # K = log U: the eigenvalues of a unitary lie on the circle
    k = vecs @ torch.diag(torch.log(vals)) @ torch.linalg.inv(vecs)
    generator = torch.stack([(k / 2).real, (k / 2).imag])  # K = A - A^dagger with A = K / 2
    torch.testing.assert_close(unitary_from_generator(generator, torch.complex128), u, atol=1e-9, rtol=0)
    ceiling = ExactEngine(4, [], (3,), ansatz="unitary", dtype=torch.complex128)
    x, y = torch.rand(6, 16, dtype=torch.float64), torch.rand(6, 16, dtype=torch.float64)
    for got, want in zip(ceiling.branches(generator, x, y)[:3], blocks.branches(theta, x, y)[:3]):
        torch.testing.assert_close(got, want, atol=1e-8, rtol=0)
    small = torch.randn(2, 16, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g: tuple(ceiling.branches(g, x[:3], y[:3]))[:3], (small,))


@pytest.mark.parametrize("scale", [0.0, 1e-3, 1.0, 3.0])
def test_unitary_from_generator_equals_torch_matrix_exp_and_its_gradient(scale):
    """The ceiling's exp(K) comes from one eigendecomposition with a closed-form backward (much
    faster than Pade at 512 x 512); it must be torch.linalg.matrix_exp, values and gradients, also
    at K = 0 (every eigenvalue degenerate: the initialisation) and with a repeated spectrum."""
    from qmae_qiskit.engines.exact import unitary_from_generator

    torch.manual_seed(11)
    generator = scale * torch.randn(2, 32, 32, dtype=torch.float64)
    if scale == 1.0:  # a block-diagonal generator with two equal blocks: repeated eigenvalues
        generator[:, 16:, 16:] = generator[:, :16, :16]
        generator[:, :16, 16:] = generator[:, 16:, :16] = 0
    generator.requires_grad_()
    weight = torch.randn(32, 32, dtype=torch.complex128)

    def reference(g):
        x, y = g.unbind(0)
        return torch.linalg.matrix_exp(torch.complex(x - x.T, y + y.T))

    got, want = unitary_from_generator(generator, torch.complex128), reference(generator)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    (g_got,) = torch.autograd.grad((got * weight).real.sum(), generator)
    (g_want,) = torch.autograd.grad((want * weight).real.sum(), generator)
    torch.testing.assert_close(g_got, g_want, atol=1e-10, rtol=0)
    small = (scale * torch.randn(2, 6, 6, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda g: torch.view_as_real(unitary_from_generator(g, torch.complex128)), (small,))
