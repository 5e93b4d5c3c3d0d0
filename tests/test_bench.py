"""``qmae bench --quick`` runs every path and writes well-formed figures (its speed is not tested)."""

import json
import math
import subprocess
import sys


def test_quick_benchmark_output_is_well_formed(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "qmae_qiskit.cli", "bench", "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert [r["batch"] for r in result["exact"]] == [1, 32, 128, 512]
    for r in result["exact"]:
        assert r["step_s"] > 0 and math.isclose(r["images_per_s"] * r["s_per_image"], 1.0)
    assert result["roofline"]["efficiency"] > 0
    assert result["epoch"][0]["epoch_24345_s"] > 0
    est = result["estimator"]  # issue 24: the Aer path next to the exact engine, in the same run
    assert [r["batch"] for r in est["n8"]] == [4, 8]
    for r in est["n8"]:
        assert min(r["forward_s_per_image"], r["fwd_bwd_s_per_image"], r["exact_fwd_bwd_s_per_image"]) > 0
        assert math.isclose(r["ratio"], r["fwd_bwd_s_per_image"] / r["exact_fwd_bwd_s_per_image"])
        assert r["max_abs_difference"] < 1e-6  # the loss and the gradients equal the exact engine's
    assert min(est["n4_fwd_bwd_s_per_image"], est["n4_fwd_bwd_param_shift_s_per_image"]) > 0
    ee = result["estimator_epoch"]  # one epoch on each engine, same seed: the same held-out fidelity
    assert ee["train_images"] == 64 and ee["estimator"]["steps"] == ee["exact"]["steps"] == 2
    assert ee["heldout_difference"] < 1e-3 and min(ee["estimator"]["wall_s"], ee["exact"]["wall_s"]) > 0
    assert "s_per_image" in result["paper"] or "pip install" in result["paper"]["skipped"]
    assert [r["n"] for r in result["scaling"]] == [4, 6, 8] and all(r["peak_rss_mib"] > 0 for r in result["scaling"])
    assert result["evaluation"]["seconds"] > 0
    assert result["speedup"]["exact_best_vs_estimator_n8_fwd_bwd"] > 1
    assert "estimator engine (EstimatorQNN on Aer, Aer adjoint gradient) vs exact" in done.stdout
    cl = result["classifier"]  # issue 24, item 5: the classifier's training time and clean accuracy
    assert cl["train_images"] == 512 and cl["epochs"] == 1 and cl["train_s"] > 0
    assert 0 <= cl["clean_accuracy"] <= 1 and cl["step_s"] > 0 and cl["step_plain_conv_s"] > 0
    assert "classifier (ResNet18, qmae classifier train)" in done.stdout
    assert "exact engine" in done.stdout and "speed-ups" in done.stdout


def test_one_section_runs_alone(tmp_path):
    """``qmae bench --only estimator``: that section, its ratio, and no other section."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "qmae_qiskit.cli", "bench", "--quick", "--only", "estimator", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert "estimator" in result and not {"exact", "classifier", "scaling", "paper"} & set(result)
    assert set(result["speedup"]) == {
        "estimator_n8_fwd_bwd_batch8_vs_exact",
        "estimator_aer_gradient_vs_param_shift_n4",
    }
    assert "exact engine on" not in done.stdout and "estimator engine" in done.stdout
