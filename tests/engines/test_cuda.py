"""The exact engine on a CUDA GPU gives Qiskit's and the CPU's answers (``--device cuda``).

These run only where torch sees a GPU; everywhere else they are skipped with that reason.
"""

import json
import subprocess
import sys

import pytest
import torch

from qmae_qiskit import QMAE
from qmae_qiskit.circuits.ansatz import all_pairs
from qmae_qiskit.engines.exact import ExactEngine

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU: torch.cuda.is_available() is False on this machine"
)


def test_unitary_on_gpu_equals_qiskit_operator():
    from qiskit.quantum_info import Operator

    from qmae_qiskit.circuits import encoder

    torch.manual_seed(0)
    theta = torch.randn(15 * 28, dtype=torch.float64)
    engine = ExactEngine(8, all_pairs(8), (7,), dtype=torch.complex128)
    got = engine.unitary(theta.cuda())
    assert got.device.type == "cuda"
    circuit = encoder(8)
    expected = Operator(circuit.assign_parameters(theta.numpy())).data
    torch.testing.assert_close(got.cpu(), torch.from_numpy(expected), atol=1e-10, rtol=0)


@pytest.mark.parametrize("batch", [3, 200])  # 2B < 256: gates on the states; 2B > 256: U is built
def test_fidelity_gradients_and_reconstruction_on_gpu_equal_cpu(mnist16, batch):
    images = mnist16.repeat(batch // len(mnist16) + 1, 1, 1)[:batch]
    cpu = QMAE(seed=4)
    mask = cpu.random_mask(batch, generator=torch.Generator().manual_seed(0))
    gpu = QMAE(seed=4).cuda()
    results = []
    for model, dev in ((cpu, "cpu"), (gpu, "cuda")):
        model.zero_grad()
        loss = model.loss(images.to(dev), mask.to(dev))
        loss.backward()
        recon = model.reconstruct(images.to(dev), mask.to(dev)).detach()
        results.append((loss.detach().cpu(), model.theta.grad.cpu(), model.token.grad.cpu(), recon.cpu()))
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-4)
    assert results[0][1].abs().max() > 1e-3  # the gradient is not trivially zero


def test_cli_trains_on_gpu_and_the_run_loads_on_cpu(tmp_path):
    run = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "qmae_qiskit.cli",
            "train",
            "--out",
            str(run),
            "--image-size",
            "4",
            "--patch-size",
            "2x2",
            "--limit",
            "64",
            "--batch-size",
            "16",
            "--epochs",
            "1",
            "--eval-limit",
            "16",
            "--device",
            "cuda",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    model = QMAE.load(str(run))
    assert model.theta.device.type == "cpu"
    config = json.loads((run / "config.json").read_text())
    assert config["options"]["device"] == "cuda"
