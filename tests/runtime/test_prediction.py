"""qmae submit --dry-run: what the device will return, predicted by the noisy engine, and nothing sent."""

from __future__ import annotations

import json

import pytest

from qmae_qiskit.cli import main


@pytest.fixture
def jobs(tmp_path, monkeypatch):
    monkeypatch.setenv("QMAE_JOBS_DIR", str(tmp_path / "jobs"))
    return tmp_path / "jobs"


def test_a_dry_run_predicts_below_the_exact_values_and_submits_nothing(run4, jobs, capsys):
    assert main(["submit", str(run4), "--backend", "fake_fez", "--images", "2", "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "fake_fez" and len(out["exact"]) == len(out["returned"]) == 2
    assert all(r < n < e for e, n, r in zip(out["exact"], out["noisy"], out["returned"]))
    assert out["noise"]["isa_two_qubit_gates"] > 0 and out["trajectories"] == 1000
    assert not jobs.exists() or not any(jobs.iterdir())  # no record: nothing was submitted
    assert main(["submit", str(run4), "--backend", "fake_fez", "--images", "2", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "nothing submitted" in text and "predicted return" in text


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--backend", "aer"], "reports no two-qubit gate errors"),
        (["--backend", "fake_fez", "--embedding-layers", "4"], "drop --embedding-layers"),
    ],
)
def test_what_a_dry_run_cannot_predict_is_refused_in_one_line(run4, jobs, capsys, extra, match):
    assert main(["submit", str(run4), "--images", "1", "--dry-run", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err
