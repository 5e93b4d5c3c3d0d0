"""The IBM runtime path in local testing mode: real client code (executor Sampler, Batch) on Aer
and on fake devices with their noise. No mocks."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from qmae_qiskit import QMAE
from qmae_qiskit.model_circuits import template
from qmae_qiskit.runtime import JobError, fetch, load_record, submit
from qmae_qiskit.runtime.backends import BackendError, get_backend
from qmae_qiskit.runtime.transpile import isa_circuit, transpile_report
from qmae_qiskit.training import train


@pytest.fixture(autouse=True)
def jobs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QMAE_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "secret-token-never-written")
    return tmp_path / "jobs"


def test_noiseless_aer_agrees_with_the_exact_engine_within_4_sigma(run4, jobs_dir):
    record = submit(run4, backend="aer", images=2, shots=4000, variant="reset", seed=7)
    result = fetch(record.job_id)
    assert record.status == "done" and len(result.images) == 2
    for row in result.images:
        assert abs(row["fidelity"] - row["exact"]) <= 4 * row["stderr"] + 1e-9
    assert abs(result.mean_fidelity - result.mean_exact) <= 4 * result.mean_stderr
    for path in jobs_dir.iterdir():  # the token is nowhere on disk
        assert "secret-token-never-written" not in path.read_text(errors="ignore")


def test_a_quick_job_on_a_fake_device_is_submitted_fetched_and_scored(run4, jobs_dir):
    """Local testing mode on fake_fez, end to end in seconds: the options resolved, the record
    written, the Sampler in a Batch, the counts saved and scored next to the exact engine."""
    record = submit(run4, backend="fake_fez", images=1, shots=300, variant="compute_uncompute")
    result = fetch(record.record_id)
    assert record.status == "done" and record.local and record.options.profile is None
    row = result.images[0]
    assert 0.0 <= row["fidelity"] <= 1.0 and row["stderr"] > 0 and row["exact"] == pytest.approx(record.exact[0])
    assert (jobs_dir / f"{record.record_id}.result.json").is_file()


@pytest.mark.slow
def test_noisy_fake_device_gives_a_lower_fidelity(run4):
    noiseless = fetch(submit(run4, backend="aer", images=2, shots=4000, variant="destructive").record_id)
    noisy = fetch(submit(run4, backend="fake_fez", images=2, shots=4000, variant="destructive").record_id)
    assert noisy.mean_fidelity < noiseless.mean_fidelity - 4 * (noisy.mean_stderr + noiseless.mean_stderr)


@pytest.mark.slow
def test_reconstruction_job_matches_the_exact_pixels_and_writes_png(run4, tmp_path):
    record = submit(run4, backend="aer", images=3, shots=8000, reconstruct=True)
    result = fetch(record.record_id, png=tmp_path / "recon.png")
    assert record.variant == "reconstruction"
    assert all(row["fidelity"] > 0.98 for row in result.images)  # classical fidelity with the exact distribution
    assert (tmp_path / "recon.png").stat().st_size > 1000


@pytest.mark.slow
def test_killed_submit_leaves_a_record_that_fetch_completes(run4, jobs_dir):
    env = dict(os.environ, QMAE_JOBS_DIR=str(jobs_dir))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qmae_qiskit.cli",
            "submit",
            str(run4),
            "--backend",
            "fake_fez",
            "--images",
            "2",
            "--shots",
            "20000",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(jobs_dir.glob("*.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (path,) = list(jobs_dir.glob("*.json"))
    record = json.loads(path.read_text())
    assert record["status"] in ("submitting", "submitted")
    result = fetch(record["record_id"])
    assert load_record(record["record_id"]).status == "done" and len(result.images) == 2


@pytest.mark.slow
def test_cli_submit_json_jobs_and_fetch(run4, jobs_dir):
    env = dict(os.environ, QMAE_JOBS_DIR=str(jobs_dir))
    cli = [sys.executable, "-m", "qmae_qiskit.cli"]
    done = subprocess.run(
        cli + ["submit", str(run4), "--backend", "aer", "--images", "2", "--shots", "500", "--twirling", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["job_id"] and out["status"] == "done" and "local testing mode" in out["note"]
    listed = subprocess.run(cli + ["jobs"], env=env, capture_output=True, text=True)
    assert out["job_id"] in listed.stdout
    fetched = json.loads(
        subprocess.run(cli + ["fetch", out["job_id"], "--json"], env=env, capture_output=True, text=True).stdout
    )
    assert [row["index"] for row in fetched["images"]] == [0, 1]
    assert set(fetched["images"][0]) >= {"index", "fidelity", "stderr", "exact"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["fetch", "no-such-job"], "no job record"),
        (["submit", "RUN", "--backend", "fake_nowhere"], "unknown fake backend"),
        (["submit", "RUN", "--backend", "fake_belem"], "needs 9 qubits but fake_belem has 5"),
        (["submit", "RUN", "--backend", "ibm_fez"], "no IBM Quantum account"),
        (["submit", "RUN", "--backend", "aer", "--shots", "0"], "--shots must be a positive integer, got 0"),
    ],
)
def test_runtime_errors_are_one_line(run4, jobs_dir, tmp_path, args, message):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QISKIT_IBM")}
    env.update(QMAE_JOBS_DIR=str(jobs_dir), HOME=str(tmp_path))  # no saved account
    args = [str(run4) if a == "RUN" else a for a in args]
    done = subprocess.run([sys.executable, "-m", "qmae_qiskit.cli"] + args, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.startswith("qmae:")]) == 1


def test_full_size_transpile_report_on_a_fake_device():
    model = QMAE(seed=0)
    rows = {r.variant: r for r in transpile_report(model, get_backend("fake_fez"))}
    assert {v: r.qubits for v, r in rows.items()} == {"paper": 18, "reset": 17, "destructive": 16}
    for r in rows.values():
        assert r.two_qubit_gates >= r.logical_two_qubit_gates > 600
        assert 0 < r.success_probability < 0.05
    isa = isa_circuit(model, get_backend("fake_fez"), "reset")
    assert len(isa.parameters) == len(template(model, "reset").circuit.parameters)  # still parameterized


def test_unknown_backend_lists_the_local_ones():
    with pytest.raises(BackendError, match="fake_fez"):
        get_backend("fake_fezz")
    with pytest.raises(JobError):
        load_record("missing")


@pytest.fixture(scope="module")
def run4_postselect(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "qmae4-ps"
    train(
        out=out, image_size=4, patch_size="2x2", epochs=1, limit=256, batch_size=32, eval_limit=0, progress=False,
        objective="postselect", decoder="untied",
    )  # fmt: skip
    return out


@pytest.mark.parametrize("variant", ["postselect", pytest.param("postselect_flag", marks=pytest.mark.slow)])
def test_postselected_job_scores_the_kept_shots(run4_postselect, variant):
    """On noiseless Aer, F of the kept shots agrees with the exact engine within 4 sigma, and the
    kept fraction with P(trash = 0); the error counts only the kept shots."""
    record = submit(run4_postselect, backend="aer", images=3, shots=8000, variant=variant, seed=3)
    result = fetch(record.record_id)
    assert record.exact_keep is not None and result.mean_keep_fraction is not None
    for row, keep in zip(result.images, record.exact_keep):
        assert abs(row["fidelity"] - row["exact"]) <= 4 * row["stderr"] + 1e-9
        assert abs(row["keep_fraction"] - keep) <= 4 * (keep * (1 - keep) / 8000) ** 0.5 + 1e-9
        kept_shots = row["keep_fraction"] * 8000
        assert row["stderr"] == pytest.approx((row["fidelity"] * (1 - row["fidelity"]) / kept_shots) ** 0.5, rel=1e-6)


@pytest.mark.slow
def test_a_postselected_run_is_submitted_postselected_by_default(run4_postselect, run4):
    assert submit(run4_postselect, backend="aer", images=1, shots=100).variant == "postselect"
    assert submit(run4, backend="aer", images=1, shots=100).variant == "reset"
    assert submit(run4, backend="aer", images=1, shots=100, profile="best", cdr=3).variant == "compute_uncompute"


@pytest.mark.slow
def test_postselected_run_reconstructs_from_its_kept_shots(run4_postselect, tmp_path):
    record = submit(run4_postselect, backend="aer", images=2, shots=8000, reconstruct=True)
    assert record.variant == "reconstruction_postselect"
    result = fetch(record.record_id, png=tmp_path / "ps.png")
    assert all(row["fidelity"] > 0.98 and 0 < row["keep_fraction"] <= 1 for row in result.images)
    assert (tmp_path / "ps.png").stat().st_size > 1000


@pytest.mark.slow
def test_postselected_job_runs_on_a_fake_device_with_the_best_profile(run4_postselect):
    """Local testing mode on fake_fez: mid-circuit measurement, readout mitigation and CDR together."""
    record = submit(run4_postselect, backend="fake_fez", images=2, shots=2000, profile="best", cdr=4)
    result = fetch(record.record_id)
    assert record.variant == "postselect"  # the run's own objective, not the profile's compute_uncompute
    assert record.options.readout_mitigation and record.options.embedding_layers == 16
    assert len(result.images) == 2 and 0 < result.mean_keep_fraction <= 1
    assert all(0.0 <= row["raw"] <= 1.0 for row in result.images)


def test_flagged_reconstruction_on_one_density_matrix_matches_the_mid_circuit_one(run4_postselect):
    """``--variant postselect_flag --reconstruct --simulator-method density_matrix``: the trash
    flagged instead of measured mid-circuit, every shot of a noisy fake device sampled from one
    density matrix; on noiseless Aer the flagged pixels are the exact engine's."""
    exact = fetch(
        submit(
            run4_postselect, backend="aer", images=2, shots=8000, reconstruct=True, variant="postselect_flag"
        ).record_id
    )
    assert exact.record.variant == "reconstruction_postselect_flag"
    assert all(row["fidelity"] > 0.98 for row in exact.images)
    for row, keep in zip(exact.images, exact.record.exact_keep):
        assert abs(row["keep_fraction"] - keep) <= 4 * (keep * (1 - keep) / 8000) ** 0.5 + 1e-9
    record = submit(
        run4_postselect, backend="fake_fez", images=2, shots=4000, reconstruct=True, variant="postselect_flag",
        simulator_method="density_matrix",
    )  # fmt: skip
    assert record.options.simulator_method == "density_matrix" and record.status == "done"
    noisy = fetch(record.record_id)
    assert all(0.5 < row["fidelity"] <= 1.0 and 0 < row["keep_fraction"] <= 1 for row in noisy.images)
    assert 0.0 < noisy.as_json()["mean_composite_fidelity"] <= 1.0


def test_the_simulator_method_reaches_aer_and_is_refused_for_a_device(run4_postselect):
    from qiskit_aer import AerSimulator
    from qiskit_ibm_runtime.fake_provider import FakeFez

    from qmae_qiskit.model import load_model
    from qmae_qiskit.options import OptionError
    from qmae_qiskit.runtime.execution import _simulator
    from qmae_qiskit.runtime.options import SubmitOptions
    from qmae_qiskit.runtime.records import JobRecord
    from qmae_qiskit.runtime.submission import _check_fits

    fez = FakeFez()
    record = JobRecord.__new__(JobRecord)
    record.local, record.options = True, SubmitOptions(simulator_method="density_matrix")
    simulator = _simulator(fez, record)
    assert isinstance(simulator, AerSimulator) and simulator.options.method == "density_matrix"
    assert simulator.options.noise_model is not None  # the device's noise, not an ideal simulator
    record.options = SubmitOptions(simulator_method="automatic")
    assert _simulator(fez, record) is fez

    class Device(FakeFez):  # what is_local sees of an IBM device: another module, another name
        def __init__(self):
            super().__init__()
            self.name = "ibm_device"

    with pytest.raises(OptionError, match="simulator_method density_matrix chooses how Aer simulates"):
        options = SubmitOptions(simulator_method="density_matrix")
        _check_fits(run4_postselect, load_model(run4_postselect), Device(), options)


def test_qmae_circuit_draws_a_png_out_of_the_box(run4, tmp_path):
    """The mpl drawer needs pylatexenc: it comes with the package (issue 22), so a fresh install draws."""
    from qmae_qiskit.cli import main

    png = tmp_path / "circuit.png"
    assert main(["circuit", str(run4), "--backend", "aer", "--variant", "compute_uncompute", "--draw", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


@pytest.mark.slow
def test_fetch_accuracy_classifies_the_composites_from_counts(run4_postselect):
    """``qmae fetch --accuracy``: the classifier of ``qmae evaluate`` on the composites from counts,
    the exact composites, the mean-image fill and the originals, on the job's images."""
    record = submit(run4_postselect, backend="aer", images=6, shots=4000, reconstruct=True, seed=2)
    result = fetch(record.record_id, accuracy=True)
    accuracy = result.as_json()["composite_accuracy"]
    assert accuracy["images"] == 6 and accuracy["classifier"].endswith(".pt")
    assert all(0.0 <= accuracy[k] <= 1.0 for k in ("device", "exact", "mean_image_fill", "original"))
    with pytest.raises(JobError, match="accuracy needs --reconstruct"):
        fetch(submit(run4_postselect, backend="aer", images=1, shots=100).record_id, accuracy=True)
