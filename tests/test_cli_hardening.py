"""Bad inputs and faults against the real ``qmae`` command: one line on stderr, exit 2, nothing
written, nothing run that should not be. (Runtime cases: tests/runtime/test_hardening.py.)"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from qmae_qiskit import QMAE, train
from qmae_qiskit.checkpoint import CheckpointError
from qmae_qiskit.runs import writer_lock

CLI = [sys.executable, "-m", "qmae_qiskit.cli"]
SMALL = ["--image-size", "4", "--patch-size", "2x2", "--limit", "64", "--batch-size", "16", "--eval-limit", "0"]


def qmae(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        CLI + list(args), capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def one_line_error(done: subprocess.CompletedProcess, match: str, code: int = 2) -> str:
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert done.returncode == code, done.stderr
    assert len(lines) == 1 and lines[0].startswith("qmae: error:"), lines
    assert "Traceback" not in done.stderr and match in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def run4(tmp_path_factory):
    out = tmp_path_factory.mktemp("hard") / "run"
    train(out=out, image_size=4, patch_size="2x2", epochs=1, limit=64, batch_size=16, eval_limit=0, progress=False)
    return out


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to, ignore=shutil.ignore_patterns(".lock", ".writer"))
    return to


# --- security ----------------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_a_crafted_checkpoint_runs_no_code_anywhere(run4, tmp_path):
    bad = _copy(run4, tmp_path / "crafted")
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"model": _Payload(str(marker))}, buffer)
    (bad / "checkpoint.pt").write_bytes(buffer.getvalue())
    one_line_error(qmae("evaluate", str(bad), "--no-accuracy"), "refusing to load it")
    one_line_error(qmae("train", "--resume", str(bad)), "refusing to load it")
    one_line_error(qmae("train", "--out", str(tmp_path / "tuned"), "--init-from", str(bad), *SMALL), "refusing to load")
    one_line_error(qmae("circuit", str(bad), "--backend", "aer"), "refusing to load it")
    with pytest.raises(CheckpointError, match="refusing to load it"):
        QMAE.load(bad)
    assert not marker.exists()


# --- one writer per run directory ----------------------------------------------------------------


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not path.exists():
        time.sleep(0.05)
    assert path.exists(), proc.stderr.read().decode() if proc.poll() is not None else "timeout"


@pytest.mark.slow
def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "busy"
    first = subprocess.Popen(
        CLI + ["train", "--out", str(out), "--epochs", "500", "--no-progress", *SMALL[:4], "--limit", "3000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_for(out / "metrics.jsonl", first)
        line = one_line_error(qmae("train", "--out", str(out), *SMALL), "already holds a run")
        line = one_line_error(qmae("train", "--resume", str(out)), f"pid {first.pid}")
        assert "being written by another process" in line
        config = json.loads((out / "config.json").read_text())
        assert config["options"]["epochs"] == 500 and first.poll() is None  # nothing of the second writer's
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
    assert first.returncode == 130
    assert not (out / ".writer").exists()  # released on Ctrl-C: the next writer gets it
    with writer_lock(out):
        pass


@pytest.mark.slow
def test_a_foreign_directory_or_a_file_is_not_a_run(tmp_path):
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "metrics.jsonl").write_text("mine\n")
    one_line_error(qmae("train", "--out", str(foreign), *SMALL), "not a run of ours")
    assert (foreign / "metrics.jsonl").read_text() == "mine\n"
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    one_line_error(qmae("train", "--out", str(afile), *SMALL), "is a file")
    one_line_error(qmae("train", "--out", str(tmp_path / ("x" * 300)), *SMALL), "File name too long")


@pytest.mark.slow
def test_killed_writes_leave_no_orphans_once_the_run_is_opened(run4, tmp_path):
    run = _copy(run4, tmp_path / "orphans")
    (run / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    done = qmae("train", "--resume", str(run), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert not list(run.glob(".*.tmp"))


@pytest.mark.slow
def test_double_ctrl_c_resumes_bit_for_bit(tmp_path):
    """Two SIGINTs 10-50 ms apart, then --resume: the same weights, Adam moments and metrics as an
    uninterrupted run (the checkpoint only ever holds a completed step)."""
    flags = ["--epochs", "2", "--checkpoint-every", "7", "--no-progress", "--image-size", "4", "--patch-size", "2x2"]
    flags += ["--limit", "3000", "--batch-size", "16", "--eval-limit", "0"]
    reference = tmp_path / "reference"
    assert qmae("train", "--out", str(reference), *flags).returncode == 0
    for gap in (0.01, 0.05):
        out = tmp_path / f"double-{gap}"
        proc = subprocess.Popen(
            CLI + ["train", "--out", str(out), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.time() + 120
        metrics = out / "metrics.jsonl"
        while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 20):
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        time.sleep(gap)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        assert proc.returncode == 130
        assert qmae("train", "--resume", str(out), "--no-progress").returncode == 0
        ref = torch.load(reference / "checkpoint.pt", weights_only=True)
        got = torch.load(out / "checkpoint.pt", weights_only=True)
        for key in ("model", "optimizer"):
            assert json.dumps(_flat(ref[key])) == json.dumps(_flat(got[key])), key
        assert torch.equal(ref["generator"], got["generator"])
        lines = lambda p: [json.loads(x)["loss"] for x in (p / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
        assert lines(reference) == lines(out)


def _flat(state):
    if isinstance(state, dict):
        return {str(k): _flat(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return [_flat(v) for v in state]
    if isinstance(state, torch.Tensor):
        return state.double().flatten().tolist()
    return state


# --- bad inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda c: [c], "a JSON list, not an object"),
        (lambda c: {k: v for k, v in c.items() if k != "options"}, "no 'options' object"),
        (
            lambda c: {**c, "architecture": {k: v for k, v in c["architecture"].items() if k != "pairs"}},
            "no architecture.pairs",
        ),
        (
            lambda c: {**c, "options": {**c["options"], "warp_speed": 9}},
            "config.json options holds unknown option(s) ['warp_speed']",
        ),
        (
            lambda c: {**c, "options": {**c["options"], "batch_size": -3}},
            "config.json options.batch_size must be a positive integer, got -3",
        ),
        # found by tests/test_generated_files.py: the data's record is read back too
        (lambda c: {**c, "dataset": {**c["dataset"], "test": None}}, "dataset.test is None, not an object"),
        (lambda c: {**c, "dataset": {**c["dataset"], "train": {"images": "x"}}}, "dataset.train.images is 'x'"),
        (lambda c: {**c, "data_source": 7}, "data_source is 7, not a string"),
    ],
)
def test_a_broken_config_json_is_named(run4, tmp_path, edit, match):
    run = _copy(run4, tmp_path / "broken")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(edit(config)))
    line = one_line_error(qmae("train", "--resume", str(run)), match)
    assert "config.json" in line


@pytest.mark.slow
def test_eval_masks_of_another_architecture_or_random_bytes_are_named(run4, tmp_path):
    run = _copy(run4, tmp_path / "masks")
    np.savez_compressed(
        run / "eval_masks.npz", patches=np.zeros((5, 3), dtype=np.uint8), image_size=16, patch=np.array([8, 8])
    )
    line = one_line_error(qmae("evaluate", str(run), "--no-accuracy", "--limit", "5"), "masks of another architecture")
    assert "eval_masks.npz" in line and "delete it" in line
    (run / "eval_masks.npz").write_bytes(os.urandom(300))
    line = one_line_error(
        qmae("evaluate", str(run), "--no-accuracy", "--limit", "5"), "not a readable evaluation-mask file"
    )
    assert "allow_pickle" not in line


def _read_only(path: Path, *args: str) -> subprocess.CompletedProcess:
    """The real command, with ``path`` mounted read-only (a private mount namespace: util-linux unshare)."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux's unshare (Linux) to mount a directory read-only without root")
    command = " ".join(["exec", *map(shlex.quote, CLI), *(shlex.quote(str(a)) for a in args)])
    where = shlex.quote(str(path))
    script = f"mount --bind {where} {where} && mount -o remount,ro,bind {where} && {command}"
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_finished_run_is_evaluable_read_only(run4, tmp_path):
    run = _copy(run4, tmp_path / "ro")
    (run / "eval_masks.npz").unlink(missing_ok=True)
    done = _read_only(run, "evaluate", run, "--limit", "20", "--json", "--no-accuracy")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["images"] == 20 and not (run / "eval_masks.npz").exists()
    one_line_error(_read_only(run, "train", "--resume", run), "cannot write to the run directory")
    one_line_error(_read_only(tmp_path, "train", "--out", tmp_path / "new", *SMALL), "Read-only file system")


def test_garbage_mnist_files_are_named(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
        (raw / f"{name}-ubyte").write_bytes(os.urandom(200))
    line = one_line_error(
        qmae("train", "--out", str(tmp_path / "r"), "--data-dir", str(tmp_path), *SMALL), "unreadable MNIST file"
    )
    assert "train-images-idx3-ubyte" in line and not (tmp_path / "r").exists()


def test_usage_errors_are_one_line():
    line = one_line_error(qmae("train", "--out", "x", "--engine", "pennylane"), "invalid choice")
    assert "--help" in line
    one_line_error(qmae("frobnicate"), "invalid choice")


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m, x, k: m.fidelity(x[:0], k[:0]), "empty batch"),
        (lambda m, x, k: m.random_mask(-1), "integer >= 0"),
        (lambda m, x, k: QMAE(latent_qubits=3.5), "latent_qubits must be a positive integer, got 3.5"),
        (lambda m, x, k: QMAE(latent_qubits=8), "^latent_qubits must be in 1..7"),
        (lambda m, x, k: m.fidelity((255 * x).to(torch.uint8), k), "uint8"),
        (lambda m, x, k: m.fidelity(255 * x, k), "pixels above 1"),
    ],
)
def test_python_api_errors_name_the_argument(mnist16, call, match):
    model = QMAE(seed=0)
    mask = model.random_mask(3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=match):
        call(model, mnist16[:3], mask)


def test_a_checkpoint_of_another_architecture_is_one_line(run4, tmp_path):
    run = _copy(run4, tmp_path / "mismatch")
    config = json.loads((run / "config.json").read_text())
    config["architecture"]["pairs"] = config["architecture"]["pairs"][:2]
    (run / "config.json").write_text(json.dumps(config))
    one_line_error(qmae("evaluate", str(run), "--no-accuracy", "--limit", "5"), "does not match its config.json")


@pytest.mark.parametrize(
    "argv",
    [
        ["study", "--out", "s", "--limit", "-5"],
        ["study", "--out", "s", "--seeds", "0"],
        ["fill-study", "--out", "s", "--jobs", "0"],
        ["reproduce", "--out", "s", "--seeds", "x"],
        ["evaluate", "run", "--limit", "0"],
    ],
)
def test_counts_are_whole_numbers_of_at_least_one(tmp_path, monkeypatch, capsys, argv):
    """Issue 21: qmae study --limit -5 started training; now it is refused before anything runs."""
    from qmae_qiskit.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "must be a whole number >= 1" in err[0], err
    assert not (tmp_path / "s").exists()
