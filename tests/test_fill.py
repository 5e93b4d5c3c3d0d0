"""Issue 20's fill-in work end to end: the linear fill (the classical anchor), the composite
readout and its columns, the new options from the CLI and Python, and the fill study."""

import json

import pytest
import torch

from qmae_qiskit import QMAE, load_model, train
from qmae_qiskit.cli import main
from qmae_qiskit.evaluation import evaluate_images
from qmae_qiskit.linear_fill import fit_linear_fill
from qmae_qiskit.masking import masks_from_patches
from qmae_qiskit.metrics import composite_image, masked_psnr, state_fidelity


def _linear_images(count: int, seed: int) -> torch.Tensor:
    """4x4 images whose every pixel is a fixed linear function of three latent factors: a patch is
    exactly predictable from the rest."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.rand(3, 16, generator=torch.Generator().manual_seed(0))
    factors = torch.rand(count, 3, generator=g)
    images = factors @ basis
    return (images / images.max()).reshape(count, 4, 4)


def test_linear_fill_recovers_a_linear_patch_and_chooses_alpha_on_held_out_images():
    train_images, test = _linear_images(400, 1), _linear_images(50, 2)
    fill = fit_linear_fill(train_images, patch_size=(2, 2), alphas=(1e-6, 10.0, 1000.0))
    assert fill.alpha == 1e-6 and set(fill.holdout_masked_mse) == {1e-6, 10.0, 1000.0}
    assert fill.holdout_masked_mse[1e-6] < fill.holdout_masked_mse[1000.0]
    masks = masks_from_patches(torch.arange(50)[:, None] % 4, 4, (2, 2))
    filled = fill.fill(test, masks)
    assert torch.equal(filled[~masks], test[~masks])  # the visible pixels are untouched
    assert (masked_psnr(filled, test, masks) > 40).all()
    with pytest.raises(ValueError, match="one whole patch"):
        fill.fill(test[:1], masks_from_patches(torch.tensor([[0, 1]]), 4, (2, 2)))
    with pytest.raises(ValueError, match="holdout"):
        fit_linear_fill(train_images, patch_size=(2, 2), holdout=1.5)


def test_composite_keeps_the_visible_pixels_and_pastes_the_scaled_patch():
    images = torch.rand(2, 4, 4) * 0.5 + 0.1
    masks = masks_from_patches(torch.tensor([[0], [3]]), 4, (2, 2))
    recon = images / images.flatten(1).norm(dim=1)[:, None, None]  # a perfect unit-norm reconstruction
    composite = composite_image(recon, images, masks)
    torch.testing.assert_close(composite, images)
    wrong = recon.clone()
    wrong[masks] = 0
    assert torch.equal(composite_image(wrong, images, masks)[~masks], images[~masks])
    assert (composite_image(wrong, images, masks)[masks] == 0).all()


@pytest.fixture(scope="module")
def fill_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fill") / "run"
    train(
        out=out, image_size=4, patch_size="2x2", epochs=1, limit=120, batch_size=20, eval_limit=0, progress=False,
        objective="postselect", condition="position", ancillas=1, loss="composite", keep_weight=0.01,
    )  # fmt: skip
    return out


def test_fill_options_reach_config_json_and_the_rebuilt_model(fill_run):
    config = json.loads((fill_run / "config.json").read_text())
    assert config["architecture"]["condition"] == "position" and config["architecture"]["ancillas"] == 1
    assert config["options"]["loss"] == "composite" and config["options"]["keep_weight"] == 0.01
    model = load_model(fill_run)
    assert model.theta.shape[0] == 4 and model.ancilla_theta.shape[0] == 4 and model.token.shape == (4, 2, 2)
    history = [json.loads(line) for line in (fill_run / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < h["keep_probability"] <= 1 for h in history)


def test_evaluation_reports_the_composite_the_kept_fraction_and_the_linear_fill(fill_run, mnist4, capsys):
    model = load_model(fill_run)
    mask = model.random_mask(10, generator=torch.Generator().manual_seed(0))
    out = evaluate_images(model, mnist4, mask, per_image=True, extras=False)
    with torch.no_grad():
        composite = model.reconstruct(mnist4, mask, composite=True)
        kept = model.keep_probability(mnist4, mask)
    assert out.composite.fidelity.mean == pytest.approx(
        state_fidelity(composite.flatten(1), mnist4.flatten(1)).mean().item(), abs=1e-9
    )
    assert out.composite.masked_psnr.mean == pytest.approx(out.own.masked_psnr.mean, abs=1e-9)  # the same patch
    assert out.own.keep_probability.mean == pytest.approx(kept.double().mean().item(), abs=1e-6)
    assert out.own.fidelity_per_shot.mean == pytest.approx(
        (out.per_image["fidelity"] * out.per_image["keep_probability"]).mean().item(), abs=1e-9
    )
    assert main(["evaluate", str(fill_run), "--limit", "40", "--json", "--no-accuracy"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"linear_fill", "mean_image"} <= set(result["passthrough"]) and "linear_fill_alpha" in result
    assert main(["evaluate", str(fill_run), "--limit", "40", "--no-accuracy"]) == 0
    text = capsys.readouterr().out
    assert "composite_fidelity" in text and "linear_fill" in text


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--keep-weight", "0.1"], "--keep-weight holds the kept fraction"),
        (["--loss", "composite", "--engine", "estimator"], "--loss composite reads the output's pixels"),
        (["--ancillas", "5"], "--ancillas must be"),
        (["--condition", "position", "--mask-ratio", "0.5"], "--condition position picks the weights"),
        (["--ancillas", "1", "--engine", "estimator"], "runs on --engine exact only"),
        (["--ansatz", "unitary", "--ancillas", "3"], "n + A <= 10"),
    ],
)
def test_fill_options_are_checked_in_one_line(tmp_path, capsys, argv, match):
    assert main(["train", "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err
    assert not (tmp_path / "x").exists()


def test_python_keywords_name_the_fill_options():
    with pytest.raises(ValueError, match="ancillas"):
        QMAE(ancillas=-1)
    with pytest.raises(ValueError, match="condition"):
        QMAE(condition="patch")
    model = QMAE(image_size=4, patch_size="2x2", mask_ratio=0.25)
    with pytest.raises(ValueError, match="keep_weight holds the acceptance rate"):
        model.loss(torch.rand(2, 4, 4), model.random_mask(2), keep_weight=0.1)
    with pytest.raises(ValueError, match="loss must be one of"):
        model.loss(torch.rand(2, 4, 4), model.random_mask(2), loss="mse")


def test_device_composites_from_counts_equal_the_exact_ones_when_the_counts_are_exact(mnist4):
    from qmae_qiskit.runtime.scoring import _composite_columns

    model = QMAE(image_size=4, patch_size="2x2", mask_ratio=0.25, seed=1)
    mask = model.random_mask(3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        exact = model.reconstruct(mnist4[:3], mask).square().flatten(1).numpy()
    rows = [{} for _ in range(3)]
    _composite_columns(rows, exact**0.5, exact, mnist4[:3], mask)
    for row in rows:
        assert row["composite_fidelity"] == pytest.approx(row["exact_composite_fidelity"], abs=1e-9)
        assert row["masked_psnr"] == pytest.approx(row["exact_masked_psnr"], abs=1e-9)


@pytest.mark.slow
def test_fill_study_chooses_on_held_out_images_and_tests_the_choice_once(tmp_path):
    from qmae_qiskit.studies.experiments import RunSpec
    from qmae_qiskit.studies.fill import fill_study

    candidates = (
        RunSpec("a", dict(ancillas=0, loss="composite", keep_weight=0.01)),
        RunSpec("b", dict(ancillas=1, loss="composite", keep_weight=0.01)),
    )
    found = fill_study(tmp_path / "fs", quick=True, seeds=2, limit=200, candidates=candidates, progress=False, jobs=2)
    result = found.to_json()
    assert found.chosen == result["chosen"] and found.ceiling_verdict.samples == 2
    assert [v.sentence for v in found.verdicts] == [v["sentence"] for v in result["verdicts"]]
    assert set(result["holdout"]) == {"a", "b"} and result["holdout"]["a"]["images"] == 200
    best = max(result["holdout"], key=lambda n: result["holdout"][n]["masked_psnr"])
    assert result["chosen"] == best and len(result["test"]) == 2 and result["test_images"] == 200
    assert (tmp_path / "fs" / "runs" / f"{best}-seed1" / "checkpoint.pt").is_file()
    assert not (tmp_path / "fs" / "runs" / f"{'ab'.replace(best, '')}-seed1").exists()  # only the choice gets seeds
    assert {v["fill"] for v in result["verdicts"]} == {"mean_image", "linear_fill"}  # quick: no classifier
    report = (tmp_path / "fs" / "report.md").read_text()
    assert "Chosen: **" in report and "linear_fill" in report
    ceiling = result["ceiling"]  # the choice's bound: general unitaries, the same seeds and images
    assert ceiling["of"] == best and ceiling["options"]["ansatz"] == "unitary" and len(ceiling["test"]) == 2
    assert ceiling["options"]["ancillas"] == min(1, dict(a=0, b=1)[best])
    for seed in (0, 1):
        assert (tmp_path / "fs" / "runs" / ("ceiling-" + best + ("-seed1" if seed else "")) / "checkpoint.pt").is_file()
    assert ceiling["verdict"]["samples"] == 2 and "## The ceiling: ceiling-" in report


def test_ceiling_of_a_candidate_is_its_general_unitary_channel_with_at_most_one_ancilla():
    from qmae_qiskit.studies.experiments import RunSpec
    from qmae_qiskit.studies.fill import CANDIDATES, CEILING_BATCH, CEILING_LR, ceiling_of

    chosen = next(c for c in CANDIDATES if c.name == "fill-A2-composite-k0.01")
    bound = ceiling_of(chosen)
    assert bound.name == "ceiling-fill-A2-composite-k0.01"
    want = {**chosen.options, "ansatz": "unitary", "ancillas": 1, "batch_size": CEILING_BATCH, "lr": CEILING_LR}
    assert bound.options == want
    assert ceiling_of(RunSpec("x", dict(ancillas=0))).options["ancillas"] == 0


def test_one_ancilla_block_encodes_any_contraction_so_the_a1_ceiling_bounds_every_a():
    """ceiling_of's argument, checked: for a random contraction M on 2^n, the dilation
    [[M, (I - MM^+)^(1/2)], [(I - M^+M)^(1/2), -M^+]] is unitary on n + 1 qubits and <0|W|0> = M."""
    torch.manual_seed(0)
    m = torch.randn(8, 8, dtype=torch.complex128)
    m = m / (torch.linalg.matrix_norm(m, ord=2) * 1.1)

    def sqrt_psd(a):
        vals, vecs = torch.linalg.eigh(a)
        return (vecs * vals.clamp(min=0).sqrt()) @ vecs.mH

    eye = torch.eye(8, dtype=torch.complex128)
    w = torch.cat([torch.cat([m, sqrt_psd(eye - m @ m.mH)], 1), torch.cat([sqrt_psd(eye - m.mH @ m), -m.mH], 1)], 0)
    torch.testing.assert_close(w @ w.mH, torch.eye(16, dtype=torch.complex128), atol=1e-10, rtol=0)
    torch.testing.assert_close(w[:8, :8], m)  # the ancilla is the high qubit: |0_A> is the first half


def test_position_conditioning_works_on_the_estimator_engine_too(mnist4):
    """The model binds each position's weights, so EstimatorQNN on Aer gives the exact engine's F."""
    model = QMAE(image_size=4, patch_size="2x2", mask_ratio=0.25, condition="position", seed=3)
    mask = model.random_mask(4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        exact = model.fidelity(mnist4[:4], mask)
        model.set_engine("estimator")
        aer = model.fidelity(mnist4[:4], mask)
    torch.testing.assert_close(aer.double(), exact.double(), atol=1e-5, rtol=0)
