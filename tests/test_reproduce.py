"""``qmae reproduce --quick`` writes every file, well formed; the committed full run is reproducible."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def _reproduce(out, tmp_path, *extra):
    return subprocess.run(
        [sys.executable, "-m", "qmae_qiskit.cli", "reproduce", "--out", str(out), "--quick", "--no-progress", *extra],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )


def test_quick_reproduce_writes_every_file_with_seeds_and_verdicts(tmp_path):
    out = tmp_path / "repro"
    done = _reproduce(out, tmp_path, "--seeds", "2")
    assert done.returncode == 0, done.stderr
    table = json.loads((out / "table1.json").read_text())
    names = {"qmae-25", "qae-25", "qmae-12.5", "qmae-50", "qmae-25-trash", "qae-25-trash"}
    assert set(table["ours"]) == names | {"qmae-25-postselect", "qae-25-postselect"}
    for row in table["ours"].values():
        for key in ("fidelity", "cosine_similarity", "ssim", "ssim_torchmetrics", "psnr", "accuracy", "masked_psnr"):
            assert row[key + "_stderr"] >= 0 and (0 <= row[key] <= 1 or "psnr" in key)
        assert row["fidelity_gain"] == pytest.approx(row["fidelity"] - row["input_fidelity"], abs=1e-9)
    ps = table["ours"]["qmae-25-postselect"]
    assert (
        0 < ps["keep_probability"] <= 1
        and "reset_fidelity" in ps
        and "postselected_fidelity" in table["ours"]["qmae-25"]
    )
    # two seeds: every trained row is a mean with a spread over seeds
    assert table["seeds_per_configuration"] == 2 and len(table["seeds"]["qmae-25"]) == 2
    summary = table["summary"]["qmae-25"]["fidelity"]
    seeds = [r["fidelity"] for r in table["seeds"]["qmae-25"]]
    assert summary["mean"] == pytest.approx(sum(seeds) / 2) and summary["std"] > 0
    assert (out / "runs" / "qmae-25-seed1" / "checkpoint.pt").is_file()
    assert {"zeros", "token", "mean_image", "linear_fill"} == set(table["passthrough"])
    for v in table["verdicts"]:  # stated only where the interval excludes 0
        assert (v["holds"] is None) == (v["low"] <= 0 <= v["high"]), v
        assert ("undecided" in v["sentence"]) == (v["holds"] is None)
    md = (out / "inpainting.md").read_text()
    assert "pass-through: mean training image" in md and "post-selected" in md
    md = (out / "table1.md").read_text()
    assert "paper QMAE 25 %" in md and "ours QAE 25 %" in md and "input: masked, learned token" in md
    rows = list(csv.DictReader((out / "table1.csv").open()))
    assert {r["row"] for r in rows} >= {"qmae-25", "qae-25", "paper qmae-25", "passthrough mean_image"}
    for fig in ("fig6.png", "fig7.png", "fig8.png", "inpainting.png"):
        assert (out / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "REPORT.md").read_text()
    assert "pass-through" in report and "Quick run" in report and "Versions" in report and "undecided" in report
    assert report.index("Does it fill in") < report.index("Table 1 of the paper")
    # a second call reuses the trained runs
    again = _reproduce(out, tmp_path, "--seeds", "2")
    assert again.returncode == 0
    assert json.loads((out / "table1.json").read_text())["timings"]["qmae-25-seed1"]["how"].startswith("reused")


@pytest.mark.parametrize("name", ["qmae-25", "qae-25", "qmae-25-trash"])
def test_committed_runs_reproduce_the_committed_table(name, full_mnist):
    committed = json.loads((RESULTS / "table1.json").read_text())["ours"][name]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "qmae_qiskit.cli",
            "evaluate",
            str(RESULTS / "runs" / name),
            "--data-dir",
            str(full_mnist),
            "--json",
            "--no-accuracy",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    fresh = json.loads(done.stdout)
    assert fresh["images"] == committed["images"] == 10_000
    for key in ("fidelity", "cosine_similarity", "ssim", "psnr"):
        assert round(fresh[key], 3) == round(committed[key], 3), key
