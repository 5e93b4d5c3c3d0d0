"""Every committed run still loads and evaluates to the numbers the docs report, whatever the code
around the model became (slow: all 10,000 test images; needs full MNIST)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qmae_qiskit import evaluate_run, load_model

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "docs" / "results" / "runs"
COMMITTED = json.loads((ROOT / "docs" / "results" / "table1.json").read_text())["ours"]


def test_every_committed_run_loads():
    runs = sorted(p.parent for p in ROOT.joinpath("docs").rglob("checkpoint.pt"))
    assert len(runs) >= 20
    for run in runs:
        model = load_model(run)
        saved = json.loads((run / "config.json").read_text())["architecture"]
        assert model.trash_qubits == tuple(saved["trash_qubits"]), run
        assert [list(p) for p in model.pairs] == saved["pairs"], run


@pytest.mark.parametrize("name", ["qmae-25", "qae-25", "qmae-25-postselect"])
def test_committed_runs_evaluate_to_the_reported_numbers(name, full_mnist):
    got = evaluate_run(RUNS / name, data_dir=str(full_mnist), with_accuracy=False, progress=False)
    want = COMMITTED[name]
    assert got["images"] == 10_000
    for key in ("fidelity", "masked_psnr", "keep_probability"):
        if key in want:
            assert got[key] == pytest.approx(want[key], abs=1e-6), key
