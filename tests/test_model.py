import pytest
import torch

from qmae_qiskit import QAE, QMAE
from qmae_qiskit.model_circuits import bound_circuit, template


def test_parameter_counts_follow_the_paper():
    assert QMAE().num_parameters == 420 + 64  # Eq. 7 at 25 % with one 8x8 token
    assert QAE().num_parameters == 420
    assert QMAE(patch_size="8x4", mask_ratio=0.125).token.shape == (8, 4)


def test_token_fills_masked_patches_and_qae_zeros_them(mnist16):
    model, qae = QMAE(seed=0), QAE(seed=0)
    mask = model.random_mask(4, generator=torch.Generator().manual_seed(0))
    assert mask.flatten(1).sum(1).tolist() == [64] * 4
    filled = model.fill(mnist16[:4], mask)
    assert torch.equal(filled[mask], model.token.detach().repeat(2, 2).expand(4, 16, 16)[mask])
    assert torch.equal(filled[~mask], mnist16[:4][~mask])
    assert (qae.fill(mnist16[:4], mask)[mask] == 0).all()


def test_fidelity_and_reconstruction_shapes_and_ranges(mnist16):
    model = QMAE(seed=1)
    mask = model.random_mask(5)
    f = model.fidelity(mnist16[:5], mask)
    assert f.shape == (5,) and ((f >= 0) & (f <= 1 + 1e-6)).all()
    out = model.reconstruct(mnist16[:5], mask)
    assert out.shape == (5, 16, 16)
    torch.testing.assert_close(out.flatten(1).norm(dim=1), torch.ones(5), atol=1e-5, rtol=0)


def test_reconstruction_of_a_perfect_autoencoder_is_the_input(mnist4):
    """With theta making U a permutation that keeps the trash at 0 for this input, F = 1."""
    model = QMAE(image_size=4, patch_size="2x2", seed=0)
    with torch.no_grad():
        model.theta.zero_()  # every block is a SWAP: U permutes qubits
        model.token.fill_(1.0)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    img = torch.zeros(1, 4, 4)
    # only pixels whose index has the trash-qubit bit mapped to 0 by the permutation light up
    img[0, 0, 0] = 1.0
    assert model.fidelity(img, mask).item() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(model.reconstruct(img, mask), img, atol=1e-6, rtol=0)


def test_bound_circuit_has_no_free_parameters(mnist16):
    model = QMAE(seed=0)
    mask = model.random_mask(1)
    qc = bound_circuit(model, mnist16[0], mask[0], variant="reset")
    assert qc.num_parameters == 0 and qc.num_qubits == 17
    assert any(inst.operation.name == "reset" for inst in qc.data)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"image_size": 12}, "power of 2"),
        ({"mask_ratio": 0.3}, "possible ratios: 0.25, 0.5, 0.75"),
        ({"latent_qubits": 8}, "latent_qubits must be in 1..7"),
        ({"latent_qubits": 0}, "latent_qubits"),
        ({"engine": "pennylane"}, "engine must be one of exact, estimator"),
        ({"patch_size": "5x5"}, "does not tile"),
    ],
)
def test_constructor_errors_name_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QMAE(**kwargs)


def test_input_errors_name_the_problem(mnist16):
    model = QMAE()
    mask = model.random_mask(2)
    good = mnist16[:2]
    cases = [
        (good[:, :8, :], mask, "square"),
        (torch.zeros(2, 8, 8) + 0.1, torch.zeros(2, 8, 8, dtype=torch.bool), "16x16"),
        (good - 1.0, mask, "negative"),
        (good.clone().index_put_((torch.tensor([0]),), torch.tensor(float("nan"))), mask, "NaN"),
        (torch.cat([good[:1], torch.zeros(1, 16, 16)]), mask, "all zero"),
        (good, mask[:1], "mask must have"),
        (good[0], mask[0], "batch"),
    ]
    for images, m, match in cases:
        with pytest.raises(ValueError, match=match):
            model.fidelity(images, m)
    with pytest.raises(ValueError, match="unknown variant"):
        bound_circuit(model, good[0], mask[0], variant="fast")


def test_fully_masked_qae_input_gets_zero_fidelity():
    model = QAE(image_size=4, patch_size="2x2", mask_ratio=0.25, seed=0)
    img = torch.zeros(1, 4, 4)
    img[0, 0, 0] = 1.0
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, :2, :2] = True
    assert model.fidelity(img, mask).item() == 0.0


def test_trash_term_is_the_probability_the_encoder_leaves_the_trash_in_zero(mnist16):
    model = QMAE(seed=4)
    images, mask = mnist16[:5], model.random_mask(5, generator=torch.Generator().manual_seed(2))
    loss, fid, _ = model.loss_terms(images, mask, trash_weight=2.5)
    psi = model.fill(images, mask).flatten(1).double()
    psi = (psi / psi.norm(dim=1, keepdim=True)).to(torch.complex128)
    from qmae_qiskit.engines.exact import ExactEngine

    exact = ExactEngine(8, model.pairs, model.trash_qubits, dtype=torch.complex128)
    phi = exact.apply(model.theta.detach().double(), psi)  # U psi, Qiskit order: trash qubit 7 is the top bit
    kept = phi[:, :128].abs().square().sum(1)
    expected = (1 - model.fidelity(images, mask)).mean() + 2.5 * (1 - kept).mean()
    assert abs(loss.item() - expected.item()) < 1e-5
    assert torch.allclose(fid, model.fidelity(images, mask))
    with pytest.raises(ValueError, match="trash_weight"):
        model.loss(images, mask, trash_weight=-1.0)


@pytest.mark.slow
def test_training_with_the_trash_term_keeps_more_in_the_latent(tmp_path):
    from qmae_qiskit.training import train

    runs = {
        w: train(
            out=tmp_path / f"w{w}",
            image_size=4,
            patch_size="2x2",
            epochs=2,
            limit=256,
            eval_limit=0,
            trash_weight=w,
            progress=False,
        ).model
        for w in (0.0, 3.0)
    }
    from qmae_qiskit.data import load_mnist

    x = load_mnist("test", image_size=4, limit=64).images
    mask = runs[0.0].random_mask(64, generator=torch.Generator().manual_seed(0))
    kept = {}
    for w, m in runs.items():
        loss_with = m.loss(x, mask, trash_weight=1.0)
        kept[w] = 1.0 - (loss_with - m.loss(x, mask)).item()
    assert kept[3.0] > kept[0.0]
    with pytest.raises(ValueError, match="trash_weight must be a number >= 0"):  # a keyword, in Python
        train(out=tmp_path / "bad", image_size=4, patch_size="2x2", trash_weight=-1, progress=False)


def test_knobs_round_trip_through_a_run_directory(tmp_path, mnist16):
    """A trained run with every knob reads back as the same model: same fidelities, same config."""
    from qmae_qiskit import load_model, train

    result = train(
        out=tmp_path / "run", epochs=1, limit=64, batch_size=32, eval_limit=0, progress=False,
        objective="postselect", layers=2, decoder="untied", token="per-patch", latent_qubits=6,
    )  # fmt: skip
    model = load_model(tmp_path / "run")
    assert (model.objective, model.layers, model.decoder, model.tokens) == ("postselect", 2, "untied", "per-patch")
    assert model.theta.shape == (15 * 28 * 2,) and model.decoder_theta.shape == model.theta.shape
    assert model.token.shape == (4, 8, 8) and model.trash_qubits == (6, 7)
    mask = model.random_mask(4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model.fidelity(mnist16[:4], mask), result.model.fidelity(mnist16[:4], mask))
    assert not torch.equal(model.theta, model.decoder_theta)  # the untied decoder trained apart


def test_per_patch_tokens_fill_each_patch_with_its_own_token():
    model = QMAE(image_size=4, patch_size=(2, 2), mask_ratio=0.5, tokens="per-patch", seed=0)
    with torch.no_grad():
        model.token.copy_(torch.arange(4.0)[:, None, None].expand(4, 2, 2) + 1)
    images = torch.full((1, 4, 4), 0.5)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, :2, 2:] = True  # patch 1 (row 0, column 1)
    mask[0, 2:, :2] = True  # patch 2 (row 1, column 0)
    filled = model.fill(images, mask)[0]
    assert (filled[:2, 2:] == 2).all() and (filled[2:, :2] == 3).all()
    assert (filled[:2, :2] == 0.5).all() and (filled[2:, 2:] == 0.5).all()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"objective": "sometimes"}, "objective must be one of reset, postselect, got 'sometimes'"),
        ({"decoder": "loose"}, "decoder must be one of tied, untied"),
        ({"tokens": "each"}, "token must be one of shared, per-patch"),
        ({"token": "each"}, "token must be one of shared, per-patch"),
        ({"ansatz": "magic"}, "ansatz must be one of blocks, unitary"),
        ({"layers": 0}, "layers must be a positive integer"),
        ({"layers": True}, "layers must be a positive integer, got True"),
        ({"warp": 9}, r"unknown option\(s\) \['warp'\]"),
        ({"ansatz": "unitary", "image_size": 64}, "n <= 10"),
        ({"ansatz": "unitary", "layers": 2}, "it has no pairs or layers"),
        ({"ansatz": "unitary", "engine": "estimator"}, "exact engine only"),
    ],
)
def test_knob_errors_name_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QMAE(**kwargs)
    with pytest.raises(ValueError, match="QAE has no mask token"):
        QAE(tokens="per-patch")


def test_objective_decides_the_default_procedure(mnist16):
    model = QMAE(seed=1, objective="postselect")
    mask = model.random_mask(3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        b = model.branches(mnist16[:3], mask)
        torch.testing.assert_close(model.fidelity(mnist16[:3], mask), b.joint / b.kept)
        torch.testing.assert_close(model.fidelity(mnist16[:3], mask, postselect=False), b.fidelity)
        torch.testing.assert_close(
            model.reconstruct(mnist16[:3], mask), model.reconstruct(mnist16[:3], mask, postselect=True)
        )
    loss = model.loss(mnist16[:3], mask, keep_weight=0.5)
    expected = (1 - b.joint / b.kept).mean() + 0.5 * (1 - b.kept).mean()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    with pytest.raises(ValueError, match="use keep_weight"):
        model.loss(mnist16[:3], mask, trash_weight=1.0)
    with pytest.raises(ValueError, match="with reset use trash_weight"):
        QMAE(seed=1).loss(mnist16[:3], mask, keep_weight=1.0)
    with pytest.raises(ValueError, match="unitary ansatz is a bound"):
        template(QMAE(ansatz="unitary", image_size=4, patch_size="2x2"), "reset")


def test_the_circuit_methods_moved_with_a_deprecation_path(mnist16):
    """QMAE.template / parameter_values / circuit still work (warning where they went), and give what
    qmae_qiskit.model_circuits gives; FidelityCircuit.ancilla reads readout_qubit with a warning."""
    from qmae_qiskit import model_circuits

    model = QMAE(seed=0)
    mask = model.random_mask(2, generator=torch.Generator().manual_seed(0))
    with pytest.warns(DeprecationWarning, match="model_circuits.template"):
        spec = model.template("reset")
    assert spec is model_circuits.template(model, "reset")
    with pytest.warns(DeprecationWarning, match="model_circuits.parameter_values"):
        old = model.parameter_values(mnist16[:2], mask, "reset")
    assert (old == model_circuits.parameter_values(model, mnist16[:2], mask, "reset")).all()
    with pytest.warns(DeprecationWarning, match="model_circuits.bound_circuit"):
        circuit = model.circuit(mnist16[0], mask[0], variant="reset")
    assert circuit == model_circuits.bound_circuit(model, mnist16[0], mask[0], variant="reset")
    with pytest.warns(DeprecationWarning, match="readout_qubit"):
        assert spec.ancilla == spec.readout_qubit == circuit.num_qubits - 1
    assert [r.name for r in circuit.qregs][-1] == "swap"
