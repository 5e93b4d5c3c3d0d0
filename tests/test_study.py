"""``qmae study --quick`` runs the grid's machinery end to end and decides only what it can."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from qmae_qiskit.studies.study import CEILINGS, GRID, KNOBS


def test_the_grid_is_every_combination_of_the_knobs():
    assert len(GRID) == 2 * 2 * 3 * 2 * 2 == len({s.name for s in GRID})
    assert {tuple(sorted(s.options)) for s in GRID} == {tuple(sorted(KNOBS))}
    assert {s.options["objective"] for s in CEILINGS} == {"reset", "postselect"}


def _study(tmp_path, out, *extra):
    return subprocess.run(
        [sys.executable, "-m", "qmae_qiskit.cli", "study", "--out", str(out), "--quick", "--no-progress", *extra],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )


def test_quick_study_writes_results_report_and_figures(tmp_path):
    out = tmp_path / "study"
    done = _study(tmp_path, out, "--seeds", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "results.json").read_text())
    assert len(result["rows"]) == 4 + 1 and all(len(r) == 2 for n, r in result["rows"].items() if "ceiling" not in n)
    ceiling = next(n for n in result["rows"] if n.startswith("ceiling"))
    assert result["configs"][ceiling]["ansatz"] == "unitary" and result["rows"][ceiling][0]["parameters"] > 100_000
    for v in result["verdicts"]:
        assert (v["holds"] is None) == ("undecided" in v["sentence"] or "no interval" in v["sentence"])
    assert {e["knob"] for e in result["effects"]} >= {"decoder", "token"}
    report = (out / "report.md").read_text()
    assert "ceiling" in report and "pass-through: mean image" in report and "What each knob does" in report
    assert (out / "reconstructions_reset.png").stat().st_size > 1000

    # --jobs 2: one run retrained and every run scored in worker processes, the same numbers.
    again = tmp_path / "again"
    shutil.copytree(out, again)
    retrained = next(r for n, r in result["rows"].items() if "ceiling" not in n)[1]["run"]
    shutil.rmtree(again / "runs" / retrained)
    done = _study(tmp_path, again, "--seeds", "2", "--jobs", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    parallel = json.loads((again / "results.json").read_text())
    assert parallel["timings"]["jobs"] == 2 and set(parallel["timings"]["train_s"]) == set(result["timings"]["train_s"])
    assert (again / "runs" / retrained / "checkpoint.pt").exists()
    for name, rows in result["rows"].items():
        for a, b in zip(rows, parallel["rows"][name], strict=True):
            assert a["run"] == b["run"]
            assert a["fidelity"] == pytest.approx(b["fidelity"], abs=1e-4), a["run"]
            assert a["masked_psnr"] == pytest.approx(b["masked_psnr"], abs=1e-2), a["run"]


def test_study_refuses_a_bad_jobs_count(tmp_path):
    done = _study(tmp_path, tmp_path / "s", "--jobs", "0")
    assert done.returncode == 2 and "--jobs: must be a whole number >= 1" in done.stderr
    assert not (tmp_path / "s" / "runs").exists()
