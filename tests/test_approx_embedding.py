"""The approximate (ladder) embedding: its fit, its circuit, and the model using it."""

import numpy as np
import pytest
import torch
from qiskit.quantum_info import Statevector

from qmae_qiskit import QMAE
from qmae_qiskit.approx_embedding import fit_ladder, ladder_cnots, ladder_states
from qmae_qiskit.circuits.embedding import ladder_embedding
from qmae_qiskit.circuits.fidelity import fidelity_circuit
from qmae_qiskit.model_circuits import bound_circuit


def test_ladder_circuit_prepares_the_fitted_state(mnist16):
    fit = fit_ladder(mnist16[:3].flatten(1), 4, sweeps=20)
    qc = ladder_embedding(8, 4)
    assert qc.count_ops()["cx"] == ladder_cnots(8, 4) == 28
    for k in range(3):
        sv = Statevector(qc.assign_parameters(fit.angles[k].flatten().tolist())).data
        np.testing.assert_allclose(sv.real, fit.states[k].numpy(), atol=1e-10)
        assert np.abs(sv.imag).max() < 1e-12
    np.testing.assert_allclose(ladder_states(fit.angles), fit.states)


def test_more_layers_fit_better_and_the_fit_is_per_image(mnist16):
    x = mnist16.flatten(1)
    small, large = fit_ladder(x, 2, sweeps=30), fit_ladder(x, 12, sweeps=30)
    assert (large.fidelity.mean() > small.fidelity.mean() + 0.05) and large.fidelity.mean() > 0.85
    expected = (large.states * (x / x.norm(dim=1, keepdim=True)).double()).sum(1) ** 2
    torch.testing.assert_close(large.fidelity, expected)
    alone = fit_ladder(x[5:6], 12, sweeps=30)  # an image's fit does not depend on its batch
    torch.testing.assert_close(alone.angles, large.angles[5:6], atol=1e-4, rtol=0)


@pytest.mark.parametrize("bad, message", [(dict(layers=0), "positive integer"), (dict(layers=2, sweeps=0), "sweeps")])
def test_fit_errors(mnist16, bad, message):
    with pytest.raises(ValueError, match=message):
        fit_ladder(mnist16[:1].flatten(1), **bad)
    with pytest.raises(ValueError, match="zero"):
        fit_ladder(torch.zeros(1, 256), 2)


def test_model_with_ladder_embedding_equals_its_circuit(mnist4):
    """F from the exact engine with the approximate embedding = P(all zeros) of the bound
    compute-uncompute circuit (density-matrix simulation), i.e. what hardware samples."""
    from qiskit_aer import AerSimulator

    model = QMAE(image_size=4, patch_size=(2, 2), seed=3, embedding_layers=3)
    images, mask = mnist4[:3], model.random_mask(3, generator=torch.Generator().manual_seed(0))
    f = model.fidelity(images, mask).detach()
    sim = AerSimulator(method="density_matrix")
    for k in range(3):
        qc = bound_circuit(model, images[k], mask[k], variant="compute_uncompute")
        assert qc.count_ops()["cx"] == 2 * ladder_cnots(4, 3) + 2 * 3 * len(model.pairs)
        qc2 = qc.remove_final_measurements(inplace=False)
        qc2.save_density_matrix()
        rho = sim.run(qc2).result().data()["density_matrix"]
        assert abs(float(np.real(rho.data[0, 0])) - f[k].item()) < 1e-6


def test_embedding_layers_round_trip_and_errors():
    with pytest.raises(ValueError, match="positive integer"):
        QMAE(embedding_layers=0)
    with pytest.raises(ValueError, match="exact engine"):
        QMAE(image_size=4, patch_size=(2, 2), embedding_layers=2, engine="estimator")
    model = QMAE(image_size=4, patch_size=(2, 2), seed=0).set_embedding(2)
    assert model.architecture()["embedding_layers"] == 2
    spec = fidelity_circuit(4, variant="compute_uncompute", embedding_layers=2)
    assert len(spec.masked) == len(spec.original) == 3 * 4


def test_line_pairs_train_option(tmp_path):
    from qmae_qiskit.model import load_model
    from qmae_qiskit.training import train

    result = train(
        out=tmp_path / "line",
        image_size=4,
        patch_size="2x2",
        epochs=1,
        limit=64,
        pairs="line",
        eval_limit=0,
        progress=False,
    )
    assert result.model.pairs == [(0, 1), (1, 2), (2, 3)]
    assert load_model(tmp_path / "line").pairs == [(0, 1), (1, 2), (2, 3)]
    with pytest.raises(ValueError, match="unknown pair set"):
        train(out=tmp_path / "bad", image_size=4, patch_size="2x2", pairs="ring", progress=False)


@pytest.mark.slow
def test_fine_tuning_with_the_ladder_embedding(tmp_path):
    from qmae_qiskit.model import load_model
    from qmae_qiskit.training import train

    base = train(
        out=tmp_path / "base", image_size=4, patch_size="2x2", epochs=1, limit=64, eval_limit=0, progress=False
    ).model
    tuned = train(
        out=tmp_path / "tuned",
        init_from=str(tmp_path / "base"),
        embedding_layers=2,
        epochs=1,
        limit=64,
        lr=0.01,
        eval_limit=8,
        progress=False,
    ).model
    assert not torch.equal(tuned.theta, base.theta)
    assert torch.equal(tuned.token, base.token)  # the ladder fit is not differentiable: the token stays
    again = load_model(tmp_path / "tuned")
    assert again.embedding_layers == 2 and torch.equal(again.theta, tuned.theta)
    with pytest.raises(ValueError, match="^init_from .*nothing is not a trained run directory"):
        train(out=tmp_path / "bad", init_from=str(tmp_path / "nothing"), progress=False)
