import pytest
import torch

from qmae_qiskit import QAE, QMAE


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
    qc = model.circuit(mnist16[0], mask[0], variant="reset")
    assert qc.num_parameters == 0 and qc.num_qubits == 17
    assert any(inst.operation.name == "reset" for inst in qc.data)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"image_size": 12}, "power of 2"),
        ({"mask_ratio": 0.3}, "possible ratios: 0.25, 0.5, 0.75"),
        ({"latent_qubits": 8}, "latent_qubits must be in 1..7"),
        ({"latent_qubits": 0}, "latent_qubits"),
        ({"engine": "pennylane"}, "unknown engine"),
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
        model.circuit(good[0], mask[0], variant="fast")


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
    loss, fid = model.forward_loss(images, mask, trash_weight=2.5)
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
        model.forward_loss(images, mask, trash_weight=-1.0)


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
        loss_with, _ = m.forward_loss(x, mask, trash_weight=1.0)
        kept[w] = 1.0 - (loss_with - m.loss(x, mask)).item()
    assert kept[3.0] > kept[0.0]
    with pytest.raises(ValueError, match="--trash-weight"):
        train(out=tmp_path / "bad", image_size=4, patch_size="2x2", trash_weight=-1, progress=False)
