"""``qmae reproduce --quick`` writes every file, well formed; the committed full run is reproducible."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def test_quick_reproduce_writes_every_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "repro"
    done = subprocess.run(
        [sys.executable, "-m", "qmae_qiskit.cli", "reproduce", "--out", str(out), "--quick", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert done.returncode == 0, done.stderr
    table = json.loads((out / "table1.json").read_text())
    assert set(table["ours"]) == {"qmae-25", "qae-25", "qmae-12.5", "qmae-50", "qmae-25-trash", "qae-25-trash"}
    for row in table["ours"].values():
        for key in ("fidelity", "cosine_similarity", "ssim", "ssim_torchmetrics", "psnr", "accuracy"):
            assert 0 <= row[key + "_stderr"] and (0 <= row[key] <= 1 or key == "psnr")
    md = (out / "table1.md").read_text()
    assert "paper QMAE 25 %" in md and "ours QAE 25 %" in md and "input: masked, learned token" in md
    rows = list(csv.DictReader((out / "table1.csv").open()))
    assert {r["row"] for r in rows} >= {"qmae-25", "qae-25", "paper qmae-25"}
    for fig in ("fig6.png", "fig7.png", "fig8.png"):
        assert (out / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "REPORT.md").read_text()
    assert "pass-through" in report and "Quick run" in report and "Versions" in report
    # a second call reuses the trained runs
    again = subprocess.run(
        [sys.executable, "-m", "qmae_qiskit.cli", "reproduce", "--out", str(out), "--quick", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert again.returncode == 0 and json.loads((out / "table1.json").read_text())["timings"]["qmae-25"][
        "how"
    ].startswith("reused")


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
