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
    est = result["estimator"]
    assert (
        min(
            est["n8_forward_s_per_image"],
            est["n8_fwd_bwd_s_per_image"],
            est["n4_fwd_bwd_s_per_image"],
            est["n4_fwd_bwd_param_shift_s_per_image"],
        )
        > 0
    )
    assert "s_per_image" in result["paper"] or "pip install" in result["paper"]["skipped"]
    assert [r["n"] for r in result["scaling"]] == [4, 6, 8] and all(r["peak_rss_mib"] > 0 for r in result["scaling"])
    assert result["evaluation"]["seconds"] > 0
    assert result["speedup"]["exact_best_vs_estimator_n8_forward"] > 1
    cl = result["classifier"]  # issue 24, item 5: the classifier's training time and clean accuracy
    assert cl["train_images"] == 512 and cl["epochs"] == 1 and cl["train_s"] > 0
    assert 0 <= cl["clean_accuracy"] <= 1 and cl["step_s"] > 0 and cl["step_plain_conv_s"] > 0
    assert "classifier (ResNet18, qmae classifier train)" in done.stdout
    assert "exact engine" in done.stdout and "speed-ups" in done.stdout
