"""The inpainting metrics: what the model adds over its own filled input, on the masked pixels,
next to the pass-through rows on the same masks."""

import json

import pytest
import torch

from qmae_qiskit import train
from qmae_qiskit.cli import main
from qmae_qiskit.evaluation import evaluate_images, passthrough
from qmae_qiskit.metrics import masked_cosine_similarity, masked_psnr, paired_interval, state_fidelity


@pytest.fixture(scope="module")
def run4(tmp_path_factory):
    out = tmp_path_factory.mktemp("ev") / "run"
    train(out=out, image_size=4, patch_size="2x2", epochs=1, limit=200, batch_size=20, eval_limit=0, progress=False)
    return out


def test_masked_metrics_look_only_at_the_masked_pixels():
    x = torch.rand(3, 4, 4)
    mask = torch.zeros(3, 4, 4, dtype=torch.bool)
    mask[:, :2, :2] = True
    y = x.clone()
    y[~mask] = 0  # wrong everywhere outside the mask: the masked metrics do not see it
    assert (masked_psnr(y, x, mask) > 100).all()
    torch.testing.assert_close(masked_cosine_similarity(y, x, mask), torch.ones(3, dtype=torch.float64))
    z = x.clone()
    z[mask] += 0.1
    torch.testing.assert_close(masked_psnr(z, x, mask), torch.full((3,), 20.0, dtype=torch.float64))
    torch.testing.assert_close(state_fidelity(2 * x.flatten(1), x.flatten(1)), torch.ones(3, dtype=torch.float64))


def test_paired_interval_is_students_t():
    i = paired_interval([2.0, 3.0, 4.0], [0.0, 0.0, 0.0])  # sd 1, t(0.975, 2) = 4.3027
    assert i.mean == pytest.approx(3.0) and i.high - i.mean == pytest.approx(4.302653 / 3**0.5, rel=1e-5)
    assert i.excludes_zero and not paired_interval([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]).excludes_zero
    with pytest.raises(ValueError, match=">= 2 values"):
        paired_interval([1.0], [0.0])


def test_model_metrics_sit_next_to_its_filled_input(run4, mnist4):
    from qmae_qiskit import load_model

    model = load_model(run4)
    mask = model.random_mask(10, generator=torch.Generator().manual_seed(0))
    out = evaluate_images(model, mnist4, mask, per_image=True)
    with torch.no_grad():
        fill_fid = state_fidelity(model.fill(mnist4, mask).flatten(1), mnist4.flatten(1))
    own = out.own
    assert own.input_fidelity.mean == pytest.approx(fill_fid.mean().item(), abs=1e-9)
    assert own.fidelity_gain.mean == pytest.approx(own.fidelity.mean - own.input_fidelity.mean, abs=1e-9)
    assert out.other_procedure == "postselected" and {"fidelity", "keep_probability"} <= set(out.other)
    assert "keep_probability" not in own
    assert len(out.per_image["masked_psnr"]) == 10
    fill = passthrough(mnist4, mask, mnist4.masked_fill(mask, 0.0))
    assert fill.metrics.masked_cosine_similarity.mean == 0.0 and fill.metrics.fidelity.mean < 1


def test_a_report_writes_the_flat_keys_and_still_reads_as_one_with_a_warning(run4, mnist4):
    """EvalReport.to_json() holds the keys every earlier version returned; report["key"] still reads
    them (deprecated)."""
    from qmae_qiskit import load_model

    model = load_model(run4)
    mask = model.random_mask(10, generator=torch.Generator().manual_seed(0))
    report = evaluate_images(model, mnist4, mask)
    flat = report.to_json()
    assert flat["fidelity"] == report.own.fidelity.mean and flat["fidelity_stderr"] == report.own.fidelity.stderr
    assert flat["composite_masked_psnr"] == report.composite.masked_psnr.mean
    assert flat["postselected_fidelity"] == report.other.fidelity.mean and "oracle_ssim" in flat
    with pytest.warns(DeprecationWarning, match="attributes"):
        assert report["fidelity"] == flat["fidelity"]
    with pytest.raises(AttributeError, match="no metric 'accuracy' here"):
        report.own.accuracy  # noqa: B018 (no classifier: no accuracy, said by name)


def test_qmae_evaluate_json_has_the_inpainting_keys_and_pass_through_rows(run4, capsys):
    assert main(["evaluate", str(run4), "--limit", "100", "--json", "--no-accuracy"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("input_fidelity", "fidelity_gain", "masked_psnr", "masked_cosine_similarity"):
        assert key in out and key + "_stderr" in out
    assert set(out["passthrough"]) == {"zeros", "token", "mean_image", "linear_fill"}
    assert out["best_passthrough_fidelity"] == max(r["fidelity"] for r in out["passthrough"].values())
    assert out["passthrough"]["token"]["fidelity"] == pytest.approx(out["input_fidelity"], abs=1e-9)
    assert out["objective"] == "reset"
