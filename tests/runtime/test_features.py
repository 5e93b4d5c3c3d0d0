"""Latent features from a device (issue 23): ``qmae submit RUN --features`` in local testing mode,
``qmae fetch`` returning the features with standard errors. Real client code on Aer and fake_fez."""

import json
import subprocess
import sys
from itertools import combinations, product

import numpy as np
import pytest
import torch
from qiskit.quantum_info import Statevector

from qmae_qiskit import load_model
from qmae_qiskit.circuits import features_from_counts, measurement_bases
from qmae_qiskit.model_circuits import parameter_values, template
from qmae_qiskit.options import OptionError
from qmae_qiskit.runtime import fetch, load_record, submit


@pytest.fixture(autouse=True)
def jobs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QMAE_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "secret-token-never-written")
    return tmp_path / "jobs"


@pytest.mark.parametrize("k", [1, 2, 3, 5, 7])
def test_the_bases_measure_every_pair_of_paulis(k):
    bases = measurement_bases(k)
    assert len(set(bases)) == len(bases) and all(len(b) == k and set(b) <= set("XYZ") for b in bases)
    for i, j in combinations(range(k), 2):
        assert {(b[i], b[j]) for b in bases} == set(product("XYZ", repeat=2)), (i, j)
    assert {b[0] for b in bases} == set("XYZ")
    assert measurement_bases(k, "pauli1") == ["X" * k, "Y" * k, "Z" * k]
    assert len(measurement_bases(7)) <= 15  # the documented count (189 observables one by one)


def test_the_circuit_in_each_basis_gives_the_exact_features(run4):
    """The features circuit, bound per basis and simulated by Qiskit's Statevector, read through
    features_from_counts (probabilities as counts), equals QMAE.features to 1e-6."""
    model = load_model(run4)
    images = torch.rand(2, 4, 4)
    clean = torch.zeros_like(images, dtype=torch.bool)
    bases = measurement_bases(len(model.latent_indices))
    values = parameter_values(model, images, clean, "features", bases=bases)
    assert values.shape == (2 * len(bases), template(model, "features").circuit.num_parameters)
    circuit = template(model, "features").circuit.remove_final_measurements(inplace=False)
    exact = model.features(images).double().numpy()
    for i in range(2):
        counts = []
        for b in range(len(bases)):
            state = Statevector(circuit.assign_parameters(values[i * len(bases) + b]))
            counts.append(state.probabilities_dict(qargs=model.latent_indices))
        got, _ = features_from_counts(counts, bases, shots=[1e12] * len(bases))
        np.testing.assert_allclose(got, exact[i], atol=1e-6)


def test_noiseless_aer_features_agree_with_the_exact_ones_within_their_errors(run4, jobs_dir):
    record = submit(run4, backend="aer", images=2, shots=3000, features=True, seed=3)
    assert record.variant == "features" and record.masks == [[], []] and record.bindings == 2 * len(record.bases)
    result = fetch(record.record_id)
    summary = result.features
    assert summary["kind"] == "pauli2" and len(summary["labels"]) == len(result.images[0]["features"]) == 3 * 3 + 9 * 3
    assert summary["shots_per_image"] == 3000 * len(record.bases)
    for row in result.images:
        z = np.abs(np.subtract(row["features"], row["exact"])) / np.maximum(row["stderr"], 1e-3)
        assert z.max() < 5, z.max()  # 36 features x 2 images: |z| >= 5 has probability ~4e-5
    assert summary["correlation"] > 0.95 and result.mean_fidelity is None
    for path in jobs_dir.iterdir():  # the token is nowhere on disk
        assert "secret-token-never-written" not in path.read_text(errors="ignore")


def test_fake_device_features_from_the_command_line(run4, tmp_path):
    """``qmae submit --features --masked-features`` on fake_fez, then ``qmae fetch --json``: the
    masked images' features (the record's masks), each with a standard error, shrunk by noise."""
    env_cmd = [sys.executable, "-m", "qmae_qiskit.cli"]
    done = subprocess.run(
        [
            *env_cmd,
            "submit",
            str(run4),
            "--backend",
            "fake_fez",
            "--features",
            "--masked-features",
            "--feature-kind",
            "pauli1",
            "--images",
            "2",
            "--shots",
            "2000",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    record_id = json.loads(done.stdout)["record_id"]
    record = load_record(record_id)
    assert record.bases == ["XXX", "YYY", "ZZZ"] and all(record.masks)
    fetched = subprocess.run([*env_cmd, "fetch", record_id, "--json"], capture_output=True, text=True, timeout=600)
    assert fetched.returncode == 0, fetched.stderr
    out = json.loads(fetched.stdout)
    assert out["variant"] == "features" and out["features"]["kind"] == "pauli1"
    row = out["images"][0]
    assert len(row["features"]) == len(row["stderr"]) == len(row["exact"]) == 9
    assert all(0 < e < 0.05 for e in row["stderr"])
    assert 0 < out["features"]["slope"] < 1.05  # noise shrinks the features towards 0
    text = subprocess.run([*env_cmd, "fetch", record_id], capture_output=True, text=True, timeout=600)
    assert "pauli1 features of 2 images, 3 bases x 2000 shots" in text.stdout


def test_features_refuse_the_fidelity_options_in_one_line(run4):
    with pytest.raises(OptionError, match="features samples its own circuit; drop cdr"):
        submit(run4, backend="aer", features=True, cdr=4)
    with pytest.raises(OptionError, match="masked_features says what features measures; add features"):
        submit(run4, backend="aer", masked_features=True)


def test_the_probe_scored_on_device_features_next_to_the_exact_ones(run4, tmp_path):
    """``qmae probe RUN --job ID``: fitted on exact training features, scored on a noiseless Aer
    job's features of 8 test images; with 20,000 shots per basis they classify as the exact ones."""
    from qmae_qiskit.runtime import probe_job

    record = submit(run4, backend="aer", images=8, shots=20000, features=True, feature_kind="pauli1", seed=5)
    result = probe_job(record.record_id)
    assert result.images == 8 and result.kind == "pauli1" and not result.masked
    assert result.shots_per_image == 3 * 20000 and result.total_shots == 8 * 3 * 20000
    assert result.correlation > 0.99 and abs(result.slope - 1) < 0.02
    assert abs(result.device_accuracy - result.exact_accuracy) <= 0.125  # at most one image of 8 flips
    lo, hi = result.exact_interval
    assert lo <= result.exact_accuracy <= hi
    out = subprocess.run(
        [sys.executable, "-m", "qmae_qiskit.cli", "probe", str(run4), "--job", record.record_id, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["exact_accuracy"] == pytest.approx(result.exact_accuracy)
    other = tmp_path / "elsewhere"
    wrong = subprocess.run(
        [sys.executable, "-m", "qmae_qiskit.cli", "probe", str(other), "--job", record.record_id],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert wrong.returncode != 0 and "not" in wrong.stderr and "Traceback" not in wrong.stderr
    fidelity_job = submit(run4, backend="aer", images=1, shots=100, variant="reset")
    with pytest.raises(ValueError, match="not features: submit with --features"):
        probe_job(fidelity_job.record_id)


def test_readout_mitigated_features_carry_mthrees_overhead(run4):
    """With ``readout_mitigation`` the counts of every basis are corrected by mthree before the
    features are read: the values move off the raw ones and the standard errors grow by the
    mitigation overhead (never shrink)."""
    record = submit(
        run4, backend="fake_fez", images=1, shots=4000, features=True, feature_kind="pauli1", readout_mitigation=True
    )
    row = fetch(record.record_id).images[0]
    assert record.calibration is not None
    assert np.abs(np.subtract(row["features"], row["raw"])).max() > 1e-3
    # each 1-local observable is read in one basis of 4,000 shots; mthree's overhead is >= 1
    binomial = np.sqrt(np.clip(1 - np.square(row["features"]), 0, None) / 4000)
    assert np.all(np.asarray(row["stderr"]) >= binomial - 1e-12)


def test_a_profile_keeps_its_embedding_and_readout_for_features():
    from qmae_qiskit.runtime.submission import resolve_options

    opts = resolve_options(None, "best", {"features": True})
    assert opts.features and opts.embedding_layers == 16 and opts.readout_mitigation
    assert opts.variant is None and opts.cdr is None and not opts.zne
