"""The noisy engine's averages are Aer's density-matrix simulation of the same circuit with the same
Pauli NoiseModel: exactly (every trajectory enumerated) at n = 2, within 4 standard errors (sampled
trajectories) at n = 4; with no noise it is the exact engine."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit.library import UnitaryGate
from qiskit.quantum_info import DensityMatrix
from qiskit_aer import AerSimulator
from qiskit_aer.library import SetDensityMatrix
from qiskit_aer.noise import NoiseModel, pauli_error

from qmae_qiskit.circuits.ansatz import all_pairs
from qmae_qiskit.engines.exact import ExactEngine, block_matrices
from qmae_qiskit.engines.noisy import PAULI_LABELS, BlockNoise, NoisyEngine

C128 = torch.complex128


def _aer_fidelity(n, pairs, trash, theta, psi, chi, noise: BlockNoise) -> float:
    """<chi| rho_out |chi> of the circuit (prepare psi, blocks, reset the trash, the blocks'
    adjoints in reverse) on Aer's density-matrix method, each block's own Pauli channel after it."""
    blocks = block_matrices(theta.reshape(-1, 15), C128).numpy()
    qc = QuantumCircuit(n)
    q = noise.input_error  # the embedding's error: a global depolarizing channel on the input
    start = (1 - q) * np.outer(psi, psi) + q * np.eye(2**n) / 2**n
    qc.append(SetDensityMatrix(DensityMatrix(start)), range(n))
    model = NoiseModel()
    for k, (i, j) in enumerate(pairs):
        qc.append(UnitaryGate(blocks[k], label=f"enc{k}"), [i, j])
    for q in trash:
        qc.reset(q)
    for k in reversed(range(len(pairs))):
        i, j = pairs[k]
        qc.append(UnitaryGate(blocks[k].conj().T, label=f"dec{k}"), [i, j])
    for k in range(len(pairs)):
        for name, probs in ((f"enc{k}", noise.encoder[k]), (f"dec{k}", noise.decoder[k])):
            terms = [(label, float(p)) for label, p in zip(PAULI_LABELS, probs) if p > 0]
            model.add_all_qubit_quantum_error(pauli_error(terms), [name])
    qc.save_density_matrix()
    sim = AerSimulator(method="density_matrix", noise_model=model)
    rho = DensityMatrix(sim.run(qc).result().data()["density_matrix"])
    return float(np.real(np.vdot(chi, rho.data @ chi)))


def _channel(k: int, seed: int) -> torch.Tensor:
    """A lopsided Pauli channel per block (every Pauli distinguishable from its mirror image)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(k, 16, generator=g, dtype=torch.float64) ** 3
    p[:, 0] += 4.0
    return p / p.sum(1, keepdim=True)


def _states(n: int, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 2**n, generator=g, dtype=torch.float64), torch.rand(
        batch, 2**n, generator=g, dtype=torch.float64
    )


def test_without_noise_it_is_the_exact_engine():
    n, pairs, trash = 4, all_pairs(4), (3,)
    theta = torch.rand(15 * len(pairs), dtype=torch.float64) * 6 - 3
    masked, original = _states(n, 5, 0)
    noisy = NoisyEngine(n, pairs, trash, noise=BlockNoise.depolarizing(len(pairs), 0.0), dtype=C128)
    got = noisy.branches(theta, masked, original)
    want = ExactEngine(n, pairs, trash, dtype=C128).branches(theta, masked, original)
    for a, b in zip(got, want):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_every_trajectory_enumerated_is_aers_density_matrix_at_n2():
    n, pairs, trash = 2, [(0, 1)], (1,)
    theta = torch.rand(15, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 6 - 3
    masked, original = _states(n, 1, 1)
    noise = BlockNoise(_channel(1, 0), _channel(1, 1))
    engine = NoisyEngine(n, pairs, trash, noise=noise, dtype=C128)
    combos = list(itertools.product(range(16), range(16)))
    enc = torch.tensor([[e] for e, _ in combos])
    dec = torch.tensor([[d] for _, d in combos])
    weights = torch.tensor([float(noise.encoder[0, e] * noise.decoder[0, d]) for e, d in combos], dtype=torch.float64)
    fid = engine.branches(
        theta, masked.expand(len(combos), -1), original.expand(len(combos), -1), trajectories=(enc, dec)
    )
    got = float((weights * fid.fidelity).sum())
    psi, chi = (v[0] / v[0].norm() for v in (masked, original))
    want = _aer_fidelity(n, pairs, trash, theta, psi.numpy(), chi.numpy(), noise)
    assert got == pytest.approx(want, abs=1e-10)
    clean = ExactEngine(n, pairs, trash, dtype=C128).branches(theta, masked, original).fidelity.item()
    assert abs(got - clean) > 1e-3  # the noise is there, and it is Aer's


def test_sampled_trajectories_average_to_aers_density_matrix_at_n4():
    n, pairs, trash = 4, all_pairs(4), (3,)
    theta = torch.rand(15 * len(pairs), dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 6 - 3
    masked, original = _states(n, 1, 2)
    rates = torch.linspace(0.02, 0.12, len(pairs))
    noise = BlockNoise.depolarizing(len(pairs), rates)
    engine = NoisyEngine(n, pairs, trash, noise=noise, dtype=C128, generator=torch.Generator().manual_seed(0))
    draws = 4000
    fid = engine.branches(theta, masked.expand(draws, -1), original.expand(draws, -1)).fidelity
    mean, err = fid.mean().item(), fid.std().item() / draws**0.5
    psi, chi = (v[0] / v[0].norm() for v in (masked, original))
    want = _aer_fidelity(n, pairs, trash, theta, psi.numpy(), chi.numpy(), noise)
    assert abs(mean - want) < 4 * err, (mean, want, err)
    clean = ExactEngine(n, pairs, trash, dtype=C128).branches(theta, masked, original).fidelity.item()
    assert abs(clean - want) > 8 * err  # the test can tell noise from none


def test_the_gradient_of_a_trajectory_is_its_circuits_gradient():
    n, pairs, trash = 3, all_pairs(3), (2,)
    noise = BlockNoise.depolarizing(len(pairs), 0.3)
    engine = NoisyEngine(n, pairs, trash, noise=noise, dtype=C128)
    masked, original = _states(n, 3, 4)
    paths = noise.sample(3, torch.Generator().manual_seed(1))
    theta = (torch.rand(15 * len(pairs), dtype=torch.float64) * 6 - 3).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: engine.branches(t, masked, original, trajectories=paths).fidelity, (theta,), atol=1e-7
    )


def test_bad_noise_is_refused_by_name():
    with pytest.raises(ValueError, match="encoder must be \\(blocks, 16\\)"):
        BlockNoise(torch.ones(2, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="summing to 1"):
        BlockNoise(torch.full((1, 16), 0.5), torch.full((1, 16), 1 / 16))
    with pytest.raises(ValueError, match="channels for 1 blocks, the circuit has 3"):
        NoisyEngine(3, all_pairs(3), (2,), noise=BlockNoise.depolarizing(1, 0.1))


def test_the_embeddings_error_enumerated_is_aers_depolarized_input_at_n2():
    """input_error q: a trajectory starts from a uniformly drawn basis state with probability q."""
    n, pairs, trash = 2, [(0, 1)], (1,)
    theta = torch.rand(15, dtype=torch.float64, generator=torch.Generator().manual_seed(7)) * 6 - 3
    masked, original = _states(n, 1, 3)
    base = BlockNoise(_channel(1, 2), _channel(1, 3))
    noise = BlockNoise(base.encoder, base.decoder, input_error=0.3)
    engine = NoisyEngine(n, pairs, trash, noise=noise, dtype=C128)
    combos = list(itertools.product(range(16), range(16), range(-1, 4)))
    enc = torch.tensor([[e] for e, _, _ in combos])
    dec = torch.tensor([[d] for _, d, _ in combos])
    starts = torch.tensor([s for _, _, s in combos])
    weight = [float(noise.encoder[0, e] * noise.decoder[0, d]) * (0.7 if s < 0 else 0.3 / 4) for e, d, s in combos]
    many = len(combos)
    out = engine.branches(
        theta, masked.expand(many, -1), original.expand(many, -1), trajectories=(enc, dec), inputs=starts
    )
    got = float((torch.tensor(weight, dtype=torch.float64) * out.fidelity).sum())
    psi, chi = (v[0] / v[0].norm() for v in (masked, original))
    assert got == pytest.approx(_aer_fidelity(n, pairs, trash, theta, psi.numpy(), chi.numpy(), noise), abs=1e-10)
    drawn = noise.sample_inputs(20000, 4, torch.Generator().manual_seed(0))
    assert abs((drawn >= 0).double().mean().item() - 0.3) < 0.02 and set(drawn.tolist()) == {-1, 0, 1, 2, 3}
