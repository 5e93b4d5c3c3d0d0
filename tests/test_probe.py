"""Latent features and the linear probe (issue 23)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from qiskit.quantum_info import SparsePauliOp, Statevector

import qmae_qiskit
from qmae_qiskit import QMAE
from qmae_qiskit.circuits import encoder
from qmae_qiskit.cli import main
from qmae_qiskit.metrics import pauli_labels
from qmae_qiskit.probe import FEATURE_SETS


def _statevector_features(model: QMAE, images: torch.Tensor, mask: torch.Tensor | None) -> np.ndarray:
    """Qiskit's own answer: the normalized (filled) image as a Statevector through the model's
    encoder circuit (``circuits.encoder`` bound to its weights), then each Pauli's expectation."""
    qc = encoder(model.num_qubits, pairs=model.encoder_pairs).assign_parameters(model.theta.detach().flatten().tolist())
    labels = pauli_labels(model.num_qubits, model.latent_indices)
    filled = model.fill(images, mask) if mask is not None else images
    out = []
    for image in filled.detach().double():
        v = image.flatten().numpy()
        state = Statevector(v / np.linalg.norm(v)).evolve(qc)
        out.append([state.expectation_value(SparsePauliOp(label)).real for label in labels])
    return np.array(out)


@pytest.mark.parametrize("size,patch,layers", [(4, "2x2", 2), (16, "8x8", 1)])
def test_features_equal_qiskit_statevector_expectation_values(mnist4, mnist16, size, patch, layers):
    model = QMAE(image_size=size, patch_size=patch, mask_ratio=0.25, layers=layers, seed=5)
    model.set_engine("exact", dtype=torch.complex128)
    with torch.no_grad():
        model.theta.normal_(0, 1, generator=torch.Generator().manual_seed(5))
        model.token.uniform_(0, 1, generator=torch.Generator().manual_seed(6))
    images = (mnist4 if size == 4 else mnist16)[:3]
    mask = model.random_mask(3, generator=torch.Generator().manual_seed(1))
    k = len(model.latent_indices)
    for m in (None, mask):
        got = model.features(images, m).numpy()
        assert got.shape == (3, 3 * k + 9 * k * (k - 1) // 2)  # 210 at n = 8
        np.testing.assert_allclose(got, _statevector_features(model, images, m), atol=1e-6)
    assert model.features(images, mask, kind="pauli1").shape == (3, 3 * k)
    with pytest.raises(ValueError, match="kind must be one of pauli1, pauli2"):
        model.features(images, mask, kind="pauli3")


@pytest.fixture(scope="module")
def run4(tmp_path_factory):
    out = tmp_path_factory.mktemp("probe") / "run"
    qmae_qiskit.train(
        out=out, image_size=4, patch_size="2x2", limit=256, epochs=1, batch_size=32, eval_limit=0, progress=False
    )
    return out


def test_probe_from_python_and_the_cli(run4, capsys):
    result = qmae_qiskit.probe(run4, limit=120, train_limit=200)
    assert [r.name for r in result.rows] == list(FEATURE_SETS)
    assert result.train_images == 200 and result.test_images == 120
    for row in result.rows:
        for accuracy, (low, high) in (
            (row.clean_accuracy, row.clean_interval),
            (row.masked_accuracy, row.masked_interval),
        ):
            assert 0.0 <= low <= accuracy <= high <= 1.0
        assert row.clean_accuracy > 0.2  # well above the 10 % of guessing, even at 4x4 on 200 images
    assert {r.name: r.features for r in result.rows}["latent"] == 3 * 3 + 9 * 3  # k = 3 latent qubits at n = 4
    assert set(result.comparisons) == {
        f"latent_minus_{o}_{c}" for o in ("untrained_encoder", "input_state") for c in ("clean", "masked")
    }
    assert main(["probe", str(run4), "--limit", "120", "--train-limit", "200", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rows"][0]["clean_accuracy"] == pytest.approx(result.rows[0].clean_accuracy)


def test_a_position_conditioned_run_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    qmae_qiskit.train(
        out=out, image_size=4, patch_size="2x2", limit=64, epochs=1, batch_size=32, eval_limit=0, progress=False,
        condition="position",
    )  # fmt: skip
    assert main(["probe", str(out)]) == 2
    assert "one encoder per masked patch" in capsys.readouterr().err
