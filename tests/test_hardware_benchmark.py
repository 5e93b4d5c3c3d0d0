"""``benchmarks/hardware.py --quick`` (one small local-mode job) writes a well-formed table."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _benchmark(out, full_mnist, *extra):
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "hardware.py"), "--out", str(out), "--quick"]
        + ["--data-dir", str(full_mnist), *extra],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )


def test_quick_hardware_table_is_well_formed(tmp_path, full_mnist):
    out = tmp_path / "hw"
    done = _benchmark(out, full_mnist)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((out / "hardware.json").read_text())["rows"]
    names = {r["mitigation"] for r in rows}
    assert {"none", "readout", "readout+zne", "readout+cdr", "readout+cdr(full)"} <= names
    for r in rows:
        assert r["two_qubit_gates_base"] > 0 and 0 <= r["mae"] <= 1 and 0 <= r["exact"] <= 1 and "correlation" in r
    assert (out / "hardware.md").read_text().count("\n") == len(rows) + 2
    assert (out / "hardware.png").stat().st_size > 1000

    # --resume: the finished job is reused, not submitted again, and scores the same.
    records = sorted((out / "jobs").glob("*.json"))
    again = _benchmark(out, full_mnist, "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "reusing" in again.stdout and sorted((out / "jobs").glob("*.json")) == records
    resumed = json.loads((out / "hardware.json").read_text())["rows"]
    assert [(r["record_id"], r["estimate"], r["job_seconds"]) for r in resumed] == [
        (r["record_id"], r["estimate"], r["job_seconds"]) for r in rows
    ]
