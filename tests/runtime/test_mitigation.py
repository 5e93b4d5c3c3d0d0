"""Mitigation: folding keeps the unitary, extrapolation, and the recorded options of a local job."""

import json

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import Operator

from qmae_qiskit.runtime import PROFILES, fetch, load_record, rescore, submit
from qmae_qiskit.runtime.mitigation import extrapolate, fold_two_qubit_gates, measured_qubits, parse_scales
from qmae_qiskit.training import train


def test_folding_keeps_the_operator_and_multiplies_two_qubit_gates():
    qc = QuantumCircuit(3)
    qc.ry(0.3, 0)
    qc.cx(0, 1)
    qc.cz(1, 2)
    qc.rz(0.2, 2)
    folded = fold_two_qubit_gates(qc, 5)
    assert sum(1 for i in folded.data if i.operation.num_qubits == 2 and i.operation.name != "barrier") == 10
    assert Operator(folded).equiv(Operator(qc))


@pytest.mark.parametrize("text", ["1", "1,2", "3,5", "1,1", "a,b", "1,23"])
def test_bad_zne_scales(text):
    with pytest.raises(ValueError, match="noise scale|ZNE needs"):
        parse_scales(text)


def test_extrapolation_recovers_an_exponential_and_a_line():
    f0, lam = 0.8, 0.6
    value, err = extrapolate([1, 3, 5], [f0 * lam**s for s in (1, 3, 5)], [1e-4] * 3)
    assert abs(value - f0) < 1e-3 and err < 0.01
    value, _ = extrapolate([1, 3], [0.7, 0.5], [0.0, 0.0], method="linear")
    assert abs(value - 0.8) < 1e-12


def test_measured_qubits_follow_the_classical_bits():
    qc = QuantumCircuit(4, 2)
    qc.measure(3, 0)
    qc.measure(1, 1)
    assert measured_qubits(qc) == [3, 1]


@pytest.fixture(scope="module")
def run4(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "qmae4-line"
    train(
        out=out,
        image_size=4,
        patch_size="2x2",
        epochs=1,
        limit=256,
        batch_size=32,
        eval_limit=0,
        pairs="line",
        progress=False,
    )
    return out


@pytest.mark.slow
def test_mitigated_job_on_a_fake_device_is_recorded_and_rescored(run4, tmp_path, monkeypatch):
    monkeypatch.setenv("QMAE_JOBS_DIR", str(tmp_path / "jobs"))
    record = submit(
        run4,
        backend="fake_fez",
        images=3,
        shots=2000,
        variant="compute_uncompute",
        embedding_layers=2,
        readout_mitigation=True,
        zne="1,3",
        cdr=6,
        seed=1,
    )
    saved = load_record(record.record_id)
    assert saved.options.embedding_layers == 2 and saved.options.readout_mitigation and saved.options.zne == (1, 3)
    assert saved.options.cdr == 6 and len(saved.training_indices) == 6 and len(saved.training_exact) == 6
    assert (tmp_path / "jobs" / f"{record.record_id}.m3.json").is_file()
    counts = json.loads((tmp_path / "jobs" / f"{record.record_id}.result.json").read_text())
    assert set(counts["counts_by_scale"]) == {"1", "3"} and len(counts["counts"]) == 3 + 6
    full = fetch(record.record_id)
    raw = rescore(record.record_id, readout_mitigation=False, zne=False, cdr=False)
    assert [r["exact"] for r in full.images] == saved.exact  # the full-embedding value, not the ladder's
    assert saved.exact_embedded is not None and saved.exact_embedded != saved.exact
    assert all(r["fidelity"] == r["raw"] for r in raw.images)
    # noise lowers the raw estimate; mitigation moves it toward the exact value
    raw_err = np.mean([abs(r["raw"] - r["exact_embedded"]) for r in full.images])
    mit_err = np.mean([abs(r["fidelity"] - r["exact_embedded"]) for r in full.images])
    assert mit_err < raw_err


@pytest.mark.slow
def test_profile_best_and_its_errors(run4, tmp_path, monkeypatch):
    monkeypatch.setenv("QMAE_JOBS_DIR", str(tmp_path / "jobs"))
    assert PROFILES["best"].variant == "compute_uncompute"
    with pytest.raises(ValueError, match="unknown profile 'fastest'; choose one of best"):
        submit(run4, backend="aer", profile="fastest")
    with pytest.raises(ValueError, match="cdr must be an integer >= 3, got 2"):
        submit(run4, backend="aer", cdr=2)
    record = submit(run4, backend="aer", images=2, shots=500, profile="best", embedding_layers=2, zne="1,3", cdr=4)
    assert (
        record.variant == "compute_uncompute" and record.options.profile == "best" and record.options.readout_mitigation
    )


@pytest.mark.slow
def test_profile_best_on_an_all_pairs_run_says_what_to_expect(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("QMAE_JOBS_DIR", str(tmp_path / "jobs"))
    run = tmp_path / "all"
    train(out=run, image_size=4, patch_size="2x2", epochs=1, limit=64, eval_limit=0, progress=False)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "qmae_qiskit.cli",
            "submit",
            str(run),
            "--backend",
            "aer",
            "--images",
            "1",
            "--shots",
            "100",
            "--profile",
            "best",
            "--embedding-layers",
            "2",
            "--cdr",
            "3",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "done" and "--pairs line" in out["note"]
    record = load_record(out["record_id"])
    assert record.variant == "compute_uncompute" and record.options.cdr_target == "full" and record.options.zne is None
