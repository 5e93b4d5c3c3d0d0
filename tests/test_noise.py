"""A device's calibration mapped onto the logical circuit the noisy engine computes (fake_fez in local
testing mode's terms: its reported gate errors), and the noisy engine's prediction from it."""

from __future__ import annotations

import pytest
import torch

from qmae_qiskit import QMAE
from qmae_qiskit.engines.noisy import NoisyEngine
from qmae_qiskit.noise import device_noise, fake_backend, noise_for
from qmae_qiskit.runtime.backends import get_backend
from qmae_qiskit.runtime.transpile import isa_circuit


@pytest.fixture(scope="module")
def fez():
    return get_backend("fake_fez")


@pytest.fixture(scope="module")
def run4(tmp_path_factory):
    from qmae_qiskit.training import train

    out = tmp_path_factory.mktemp("run") / "qmae4"
    train(out=out, image_size=4, patch_size="2x2", epochs=1, limit=256, batch_size=32, eval_limit=0, progress=False)
    return out


def test_a_fake_device_by_name_and_the_runtimes_cached_circuit_give_the_same_noise(fez):
    model = QMAE(image_size=4, patch_size=(2, 2), pairs="line", seed=0)
    assert noise_for(model, "fake_fez") == device_noise(model, fez, isa=isa_circuit(model, fez, "compute_uncompute"))
    with pytest.raises(ValueError, match="unknown fake device 'fake_fzz'"):
        fake_backend("fake_fzz")


def test_the_block_and_embedding_errors_come_from_the_gates_the_isa_circuit_runs(fez, mnist4):
    model = QMAE(image_size=4, patch_size=(2, 2), pairs="line", seed=0)
    found = device_noise(model, fez)
    isa = isa_circuit(model, fez, "compute_uncompute")
    errors = [
        fez.target["cz"][tuple(isa.find_bit(q).index for q in inst.qubits)].error
        for inst in isa.data
        if inst.operation.name == "cz"
    ]
    assert found.two_qubit_gate == "cz" and found.isa_two_qubit_gates == len(errors) > 0
    assert found.two_qubit_error == pytest.approx(sum(errors) / len(errors))
    assert found.routing_factor == pytest.approx(len(errors) / found.logical_two_qubit_gates)
    p2, p1 = found.two_qubit_error * 5 / 4, found.sx_error * 3 / 2
    clean = (1 - p2) ** (3 * found.routing_factor) * (1 - p1) ** 12
    assert found.block_error == pytest.approx(16 / 15 * (1 - clean))
    assert 0 < found.block_error < 0.2 and 0 < found.input_error < 1 and found.num_blocks == 3

    # the engine's prediction under it: below the noiseless fidelity, by more than its own spread
    noise = found.block_noise()
    engine = NoisyEngine(4, model.encoder_pairs, model.trash_qubits, noise=noise, dtype=torch.complex128,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    mask = model.random_mask(len(mnist4), generator=torch.Generator().manual_seed(0))
    masked = model.fill(mnist4, mask).flatten(1).detach().repeat(200, 1)
    original = mnist4.flatten(1).repeat(200, 1)
    with torch.no_grad():
        noisy = engine.fidelity(model.theta.detach(), masked, original)
        exact = model.fidelity(mnist4, mask).repeat(200)
    gap = (exact - noisy).mean().item()
    assert gap > 4 * (exact - noisy).std().item() / len(noisy) ** 0.5


def test_what_the_mapping_cannot_take_is_refused_in_one_line(fez):
    with pytest.raises(ValueError, match="reports no two-qubit gate errors"):
        device_noise(QMAE(image_size=4, patch_size=(2, 2), seed=0), get_backend("aer"))
    with pytest.raises(ValueError, match="blocks ansatz without ancillas"):
        device_noise(QMAE(image_size=4, patch_size=(2, 2), ancillas=1, seed=0), fez)


def test_the_prediction_is_what_aer_returns_under_the_devices_full_noise_model(fez, mnist4, run4):
    """The noisy engine under the mapped noise, with the reference's embedding and the readout
    applied (DeviceNoise.measured), next to Aer's density-matrix run of the ISA circuit with
    fake_fez's whole noise model (benchmarks/noise_prediction.py: 8 images, mean difference -0.003)."""
    from qiskit_aer import AerSimulator

    from qmae_qiskit import load_model
    from qmae_qiskit.circuits import fidelity_from_counts
    from qmae_qiskit.model_circuits import parameter_values

    model = load_model(run4)  # trained: a fidelity the noise visibly lowers
    found = device_noise(model, fez)
    images = mnist4[:2]
    mask = model.random_mask(2, generator=torch.Generator().manual_seed(0))
    engine = NoisyEngine(4, model.encoder_pairs, model.trash_qubits, noise=found.block_noise(), dtype=torch.complex128,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    t = 3000
    with torch.no_grad():
        masked = model.fill(images, mask).flatten(1).repeat_interleave(t, 0)
        noisy = engine.fidelity(model.theta.detach(), masked, images.flatten(1).repeat_interleave(t, 0))
    predicted = [found.measured(float(f)) for f in noisy.reshape(2, t).mean(1)]
    isa = isa_circuit(model, fez, "compute_uncompute")
    sim = AerSimulator.from_backend(fez, method="density_matrix")
    for row, want in zip(parameter_values(model, images, mask, "compute_uncompute"), predicted):
        counts = sim.run(isa.assign_parameters(dict(zip(isa.parameters, row))), shots=20000, seed_simulator=0)
        got = counts.result().get_counts()
        zeros, _ = fidelity_from_counts(got, variant="compute_uncompute", num_qubits=4)
        assert abs(zeros - want) < 0.03, (zeros, want)
    with torch.no_grad():
        assert max(predicted) < model.fidelity(images, mask).max().item() - 0.05  # noise the prediction sees


def test_training_through_the_noise_sees_the_noisy_fidelity_and_records_the_noise(tmp_path):
    """qmae train --noise fake_fez: the steps' fidelities are the noisy engine's (below the same run's
    without noise, step for step on the same batches and masks), noise.json holds the mapped noise,
    the checkpoint the trajectories' generator, and the held-out fidelity stays noiseless."""
    import json

    from qmae_qiskit.cli import main

    common = ["--image-size", "4", "--patch-size", "2x2", "--pairs", "line", "--epochs", "1", "--limit", "128",
              "--batch-size", "32", "--eval-limit", "16", "--no-progress"]  # fmt: skip
    assert main(["train", "--out", str(tmp_path / "noisy"), "--noise", "fake_fez", *common]) == 0
    assert main(["train", "--out", str(tmp_path / "clean"), *common]) == 0
    steps = {
        name: [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        for name in ("noisy", "clean")
    }
    first = steps["noisy"][0]["fidelity"], steps["clean"][0]["fidelity"]  # same weights, batch and masks
    assert first[0] < first[1] - 0.02, first
    config = json.loads((tmp_path / "noisy" / "config.json").read_text())
    assert config["options"]["noise"] == "fake_fez"
    recorded = json.loads((tmp_path / "noisy" / "noise.json").read_text())
    assert recorded["backend"] == "fake_fez" and 0 < recorded["block_error"] < 0.2
    state = torch.load(tmp_path / "noisy" / "checkpoint.pt", weights_only=True)
    assert "noise_generator" in state


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--noise", "fake_fzz"], "--noise: unknown fake device 'fake_fzz'"),
        (["--noise", "ibm_fez"], "--noise ibm_fez: name a fake_\\* device"),
        (["--noise", "fake_fez", "--loss", "composite"], "drop --loss"),
        (["--noise", "fake_fez", "--ancillas", "1"], "drop --ancillas"),
        (["--noise", "fake_fez", "--engine", "estimator"], "drop --engine"),
    ],
)
def test_noise_that_cannot_be_trained_through_is_refused_in_one_line(tmp_path, capsys, extra, match):
    from qmae_qiskit.cli import main

    argv = ["train", "--out", str(tmp_path / "r"), "--image-size", "4", "--patch-size", "2x2", "--limit", "64",
            "--epochs", "1", "--eval-limit", "0", "--no-progress", *extra]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and __import__("re").search(match, err[0]), err
    assert not (tmp_path / "r").exists()
