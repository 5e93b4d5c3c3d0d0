"""The runtime against bad inputs and the faults a real device brings, through the real ``qmae``
command and the local testing mode (no mocks of the client)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from qmae_qiskit.runtime import JobError, fetch, list_jobs, load_record, submit
from qmae_qiskit.runtime.backends import get_backend
from qmae_qiskit.runtime.execution import complete
from qmae_qiskit.runtime.records import JobRecord, save_record
from qmae_qiskit.runtime.transpile import target_fingerprint
from qmae_qiskit.training import train

CLI = [sys.executable, "-m", "qmae_qiskit.cli"]
TOKEN = "secret-token-never-written-or-printed"


@pytest.fixture(autouse=True)
def jobs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QMAE_JOBS_DIR", str(tmp_path / "jobs"))
    return tmp_path / "jobs"


def qmae(*args, jobs=None, env=None):
    environment = {**os.environ, **(env or {})}
    if jobs is not None:
        environment["QMAE_JOBS_DIR"] = str(jobs)
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=600, env=environment)


def one_line(done, match):
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len([line for line in lines if line.startswith("qmae:")]) == 1 and match in done.stderr, done.stderr
    return done.stderr


@pytest.mark.slow
def test_fetch_refuses_a_replaced_checkpoint_naming_both_hashes(run4, tmp_path, jobs_dir):
    run = tmp_path / "copy"
    shutil.copytree(run4, run)
    record = submit(run, backend="aer", images=2, shots=200, variant="compute_uncompute", wait=False)
    (jobs_dir / f"{record.record_id}.result.json").unlink(missing_ok=True)  # as if killed before the counts came
    train(
        out=tmp_path / "other",
        image_size=4,
        patch_size="2x2",
        epochs=1,
        limit=64,
        batch_size=32,
        eval_limit=0,
        progress=False,
    )
    shutil.copy(tmp_path / "other" / "checkpoint.pt", run / "checkpoint.pt")
    err = one_line(qmae("fetch", record.record_id, jobs=jobs_dir), "changed since job")
    assert record.checkpoint_sha256[:12] in err and "now)" in err


@pytest.mark.parametrize(
    "args,match",
    [
        (["--images", "100000"], "the test split has 1000 images"),
        (["--shots", str(10**12)], "is more than aer_simulator runs per circuit"),
        (["--images", "0"], "--images must be a positive integer, got 0"),
        (["--zne", "1,3001"], "a noise scale of 3001"),
        (["--cdr", "100000", "--variant", "compute_uncompute"], "--cdr 100000 asks for more training circuits than"),
        (["--dd"], "--dd pads idle qubits with pulses timed from the gate durations, and aer_simulator has none"),
        (["--calibration-shots", "0", "--readout-mitigation"], "--calibration-shots must be a positive integer"),
    ],
)
def test_submit_bounds_are_checked_before_any_record(run4, jobs_dir, args, match):
    one_line(qmae("submit", run4, "--backend", "aer", *args, jobs=jobs_dir), match)
    assert not list(jobs_dir.glob("*.json")) if jobs_dir.exists() else True


def test_a_circuit_too_wide_leaves_no_record(run4, jobs_dir):
    one_line(qmae("submit", run4, "--backend", "fake_belem", "--variant", "reset", jobs=jobs_dir), "needs 9 qubits")
    assert not jobs_dir.exists() or not list(jobs_dir.glob("*.json"))


@pytest.mark.slow
def test_one_bad_record_never_hides_the_others(run4, jobs_dir):
    good = submit(run4, backend="aer", images=1, shots=100, variant="compute_uncompute")
    (jobs_dir / "latin1.json").write_bytes("caf\xe9".encode("latin-1"))
    (jobs_dir / "array.json").write_text("[1, 2, 3]")
    listed = qmae("jobs", jobs=jobs_dir)
    assert listed.returncode == 0 and good.record_id in listed.stdout
    assert "latin1.json" in listed.stderr and "array.json" in listed.stderr
    fetched = qmae("fetch", good.job_id, "--json", jobs=jobs_dir)
    assert fetched.returncode == 0 and json.loads(fetched.stdout)["record_id"] == good.record_id
    (jobs_dir / f"{good.record_id}.result.json").write_text("{not json")
    err = one_line(qmae("fetch", good.record_id, jobs=jobs_dir), f"{good.record_id}.result.json")
    assert "delete the file" in err
    assert [r.record_id for r in list_jobs(refresh=False)] == [good.record_id]


@pytest.mark.slow
def test_a_token_without_a_network_names_the_cause_and_is_never_shown(run4, jobs_dir, tmp_path):
    env = {"QISKIT_IBM_TOKEN": TOKEN, "HOME": str(tmp_path), "QMAE_DEBUG": "1"}
    done = qmae("submit", run4, "--backend", "ibm_fez", jobs=jobs_dir, env=env)
    assert done.returncode == 2 and "cannot reach IBM Quantum" in done.stderr, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    env.pop("QMAE_DEBUG")
    done = qmae("jobs", jobs=jobs_dir, env=env)
    assert TOKEN not in done.stdout + done.stderr


class _Refused:
    """A job whose result raises, as the client does, and whose status says why."""

    def __init__(self, status: str) -> None:
        self._status = status

    def job_id(self) -> str:
        return "job-1"

    def status(self) -> str:
        return self._status

    def result(self):
        raise RuntimeError("the job ended early")


@pytest.mark.parametrize("status,recorded", [("CANCELLED", "cancelled"), ("ERROR", "failed")])
def test_failed_or_cancelled_comes_from_the_jobs_status(status, recorded):
    record = JobRecord(
        "r1", "aer", True, "reset", "run", "0" * 64, "test", [0], [[0]], 10, {}, [0.5], 4, job_id="job-1"
    )
    save_record(record)
    with pytest.raises(JobError, match=recorded):
        complete(record, _Refused(status))
    assert load_record("r1").status == recorded
    with pytest.raises(JobError, match=recorded):
        fetch("r1")


@pytest.mark.slow
def test_readout_calibration_runs_as_a_second_job_and_fetch_completes_both(run4, jobs_dir):
    """--no-wait returns at once with both job ids recorded; the calibration is mthree's balanced one
    (as on hardware), run through our Sampler, and fetch turns its counts into the calibration."""
    record = submit(
        run4, backend="fake_fez", images=2, shots=500, variant="compute_uncompute", readout_mitigation=True, wait=False
    )
    saved = load_record(record.record_id)
    assert saved.status == "submitted" and saved.job_id and saved.calibration_job_id
    assert saved.calibration["method"] == "balanced" and saved.calibration["shots"] == 10_000  # mthree's default
    assert not (jobs_dir / f"{record.record_id}.m3.json").exists()
    result = fetch(record.record_id)
    assert (jobs_dir / f"{record.record_id}.m3.json").is_file() and len(result.images) == 2
    assert all(row["raw"] != row["fidelity"] for row in result.images)  # corrected


def test_a_recalibrated_device_gets_a_new_transpile_cache_entry():
    backend = get_backend("fake_fez")
    before = target_fingerprint(backend)
    props = backend.target["measure"][(0,)]
    props.error = (props.error or 0) + 0.01  # a new calibration day
    assert target_fingerprint(backend) != before
    assert target_fingerprint(get_backend("fake_fez")) == before  # a fake device's own target is stable


@pytest.mark.slow
def test_verbose_logs_the_long_client_side_steps(run4, jobs_dir):
    done = qmae(
        "--verbose",
        "submit",
        run4,
        "--backend",
        "aer",
        "--images",
        "1",
        "--shots",
        "100",
        "--variant",
        "compute_uncompute",
        jobs=jobs_dir,
    )
    assert done.returncode == 0, done.stderr
    assert "transpil" in done.stderr and "waiting for job" in done.stderr and "passmanager" not in done.stderr


@pytest.mark.parametrize("job_id", ["../../evil", "/etc/passwd", "a/b", "..", "", "x" * 200])
def test_job_ids_are_names_not_paths(tmp_path, monkeypatch, capsys, job_id):
    """``qmae fetch ../../evil`` must not read a JSON file outside the jobs directory (issue 21)."""
    from qmae_qiskit.cli import main

    monkeypatch.setenv("QMAE_JOBS_DIR", str(tmp_path / "jobs"))
    (tmp_path / "evil.json").write_text("{}")
    assert main(["fetch", job_id]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a job id" in err[0], err


@pytest.mark.parametrize(
    "name,match", [("FAKE_FEZ", "did you mean fake_fez"), ("Aer", "did you mean aer"), ("", "is not a name")]
)
def test_a_misspelt_local_backend_is_named_not_sent_to_the_cloud(name, match):
    """Issue 21: these were reported as "no IBM Quantum account"."""
    from qmae_qiskit.runtime.backends import BackendError

    with pytest.raises(BackendError, match=match):
        get_backend(name)


def test_ctrl_c_while_submit_waits_names_the_record(run4, jobs_dir, monkeypatch, capsys):
    """Issue 21: Ctrl-C while waiting printed `qmae: ` and no record id."""
    from qmae_qiskit.cli import main
    from qmae_qiskit.runtime import submission

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(submission, "complete", interrupted)
    assert main(["submit", str(run4), "--backend", "aer", "--images", "1", "--shots", "10"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    record = list_jobs()[-1]
    assert len(err) == 1 and record.record_id in err[0] and "stopped waiting" in err[0], err


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "where,change,match",
    [
        ("counts", lambda d: d["counts"][0].update({"0000": -5}), "have the count -5"),
        ("counts", lambda d: d["counts"].append({"0000": 3}), "hold 3 circuits at scale 1, not 2"),
        ("counts", lambda d: d["counts"][1].update({"01x1": 2}), "have the outcome '01x1'"),
        ("record", lambda d: d.update(indices=[0, 999999]), "names test image(s) [999999]"),
        ("record", lambda d: d.update(exact=d["exact"][:1]), "exact must hold one value per image (2), got 1"),
        ("record", lambda d: d.update(shots=0), "shots must be an integer >= 1"),
        ("record", lambda d: d.update(masks=[[0]]), "masks must hold one entry per image (2)"),
    ],
)
def test_edited_counts_and_records_are_refused_not_scored(run4, jobs_dir, where, change, match):
    """Issue 21: a negative count, an image index of 999999 or a shortened exact list were scored
    without a word; the saved counts and the record are now read through a schema."""
    record = submit(run4, backend="aer", images=2, shots=50, variant="compute_uncompute")
    path = jobs_dir / (f"{record.record_id}.result.json" if where == "counts" else f"{record.record_id}.json")
    _edit(path, change)
    one_line(qmae("fetch", record.record_id, jobs=jobs_dir), match)


def test_submit_says_what_it_runs_before_it_runs_it(run4, jobs_dir):
    """Issue 21: a deep default circuit printed nothing for minutes; now the gate count, the depth and
    the estimated success probability come first, and a local simulation says it is one."""
    done = qmae("submit", run4, "--backend", "fake_fez", "--images", "1", "--shots", "20", jobs=jobs_dir)
    assert done.returncode == 0, done.stderr
    first = done.stderr.splitlines()
    assert any("two-qubit gates" in line and "estimated success probability" in line for line in first), done.stderr
    assert any("simulating 1 circuits x 20 shots locally" in line for line in first), done.stderr


def test_the_local_simulation_ticker_ends_with_the_job_and_never_hangs(capsys):
    """While a local simulation runs, the elapsed time ticks (issue 21, item 7); it stops when the
    job is final, and a job that cannot say (no final-state method, unknown status) is not waited on."""
    import time as _time
    from types import SimpleNamespace

    from qmae_qiskit.runtime.execution import _tick_while_running

    class Job:
        def __init__(self, seconds):
            self.until = _time.monotonic() + seconds

        def in_final_state(self):
            return _time.monotonic() >= self.until

    record = SimpleNamespace(bindings=2, shots=100, backend="fake_fez")
    start = _time.monotonic()
    _tick_while_running(record, Job(1.0), "job")
    assert 1.0 <= _time.monotonic() - start < 5.0

    class Mute:
        def status(self):
            raise RuntimeError("no status here")

    start = _time.monotonic()
    _tick_while_running(record, Mute(), "job")
    assert _time.monotonic() - start < 1.0
