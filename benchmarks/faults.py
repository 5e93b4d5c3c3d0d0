r"""Faults against the real ``qmae`` command, repeated: kills, Ctrl-C, concurrent writers, a killed submit.

    python benchmarks/faults.py --out runs/faults --json docs/reliability.json

Every case is compared with an uninterrupted reference run: after ``--resume`` the weights, the
Adam state, the random generator and every line of ``metrics.jsonl`` must be bit-for-bit the
reference's. Prints one line per case and writes the table as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CLI = [sys.executable, "-m", "qmae_qiskit.cli"]
BASE = {"image-size": 4, "patch-size": "2x2", "limit": 3000, "batch-size": 16, "epochs": 2, "eval-limit": 0}
BASE["checkpoint-every"] = 7


def _flags(**changes) -> list[str]:
    options = {**BASE, **{k.replace("_", "-"): v for k, v in changes.items()}}
    return [item for k, v in options.items() for item in (f"--{k}", str(v))] + ["--no-progress"]


FLAGS = _flags()


def _qmae(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        CLI + ["train", "--out", str(out), *FLAGS, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _steps(out: Path) -> int:
    path = out / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _wait_steps(out: Path, proc: subprocess.Popen, steps: int) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and _steps(out) < steps:
        time.sleep(0.002)


def _same_as(reference: Path, out: Path) -> str:
    """``""`` when ``out`` ended bit-for-bit like ``reference``, else what differs."""
    ref = torch.load(reference / "checkpoint.pt", weights_only=True)
    got = torch.load(out / "checkpoint.pt", weights_only=True)
    for key in ("model", "optimizer"):
        if _flat(ref[key]) != _flat(got[key]):
            return f"{key} differs"
    if not torch.equal(ref["generator"], got["generator"]):
        return "generator differs"
    if (reference / "metrics.jsonl").read_text().count("\n") != (out / "metrics.jsonl").read_text().count("\n"):
        return "metrics.jsonl has another number of lines"
    losses = [json.loads(x)["loss"] for x in (reference / "metrics.jsonl").read_text().splitlines()]
    if losses != [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]:
        return "metrics.jsonl differs"
    return ""


def _flat(state):
    if isinstance(state, dict):
        return {str(k): _flat(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return [_flat(v) for v in state]
    if isinstance(state, torch.Tensor):
        return state.double().flatten().tolist()
    return state


def _resume(out: Path) -> subprocess.CompletedProcess:
    return _qmae("train", "--resume", out, "--no-progress")


def case_signal(work: Path, reference: Path, name: str, signals: list[int], gap: float, at_step: int) -> dict:
    out = work / name
    proc = _start(out)
    _wait_steps(out, proc, at_step)
    for k, sig in enumerate(signals):
        if k:
            time.sleep(gap)
        proc.send_signal(sig)
    proc.wait(timeout=120)
    stderr = proc.stderr.read().decode().strip().splitlines()
    done = _resume(out)
    differs = _same_as(reference, out) if done.returncode == 0 else f"resume failed: {done.stderr.strip()}"
    orphans = list(out.glob(".*.tmp"))
    return {
        "case": name,
        "exit": proc.returncode,
        "printed": stderr[-1] if stderr else "",
        "passed": not differs and not orphans,
        "detail": differs or ("orphans left: " + ", ".join(p.name for p in orphans) if orphans else ""),
    }


def case_kills_during_writes(work: Path, reference: Path, kills: int, seed: int) -> dict:
    """``kills`` SIGKILLs at random moments of a run that checkpoints every step, each followed by
    a resume that is itself killed, then a final resume: the checkpoint always loads, no orphans."""
    out = work / "kills-during-writes"
    rng = random.Random(seed)
    every_step = _flags(checkpoint_every=1)
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc = subprocess.Popen(CLI + ["train", "--out", str(out), *every_step], **pipes)
    loaded, problems = 0, []
    for k in range(kills):
        _wait_steps(out, proc, 3 + 10 * k)
        time.sleep(rng.uniform(0.0, 0.02))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        try:
            torch.load(out / "checkpoint.pt", weights_only=True)
            loaded += 1
        except Exception as exc:
            problems.append(f"kill {k}: checkpoint unreadable ({type(exc).__name__})")
        proc = subprocess.Popen(
            CLI + ["train", "--resume", str(out), "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    proc.wait(timeout=600)
    orphans = [p.name for p in out.glob(".*.tmp")]
    reference_every_step = work / "reference-every-step"
    if not reference_every_step.exists():
        _qmae(
            "train",
            "--out",
            reference_every_step,
            *FLAGS[:-3],
            "--eval-limit",
            "0",
            "--checkpoint-every",
            "1",
            "--no-progress",
        )
    differs = _same_as(reference_every_step, out)
    return {
        "case": f"{kills} SIGKILLs at random moments, checkpoint every step",
        "exit": proc.returncode,
        "printed": f"checkpoint loadable after {loaded} of {kills} kills",
        "passed": not differs and not problems and not orphans,
        "detail": "; ".join(problems + ([differs] if differs else []) + ([f"orphans: {orphans}"] if orphans else [])),
    }


def case_concurrent_writers(work: Path) -> dict:
    out = work / "concurrent"
    long_run = CLI + ["train", "--out", str(out), *_flags(epochs=400)]
    first = subprocess.Popen(long_run, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_steps(out, first, 5)
    second = _qmae("train", "--out", out, *FLAGS)
    third = _qmae("train", "--resume", out)
    first.send_signal(signal.SIGINT)
    first.wait(timeout=60)
    config = json.loads((out / "config.json").read_text())
    ok = second.returncode == 2 and third.returncode == 2 and config["options"]["epochs"] == 400
    return {
        "case": "a second train --out and a --resume while the first trains",
        "exit": (second.returncode, third.returncode),
        "printed": third.stderr.strip(),
        "passed": ok,
        "detail": "" if ok else "a second writer was not refused",
    }


def case_killed_submit(work: Path) -> dict:
    jobs = work / "jobs"
    env = {**os.environ, "QMAE_JOBS_DIR": str(jobs)}
    run = work / "reference"
    command = ["submit", str(run), "--backend", "fake_fez", "--images", "2", "--shots", "20000"]
    command += ["--variant", "compute_uncompute"]
    proc = subprocess.Popen(CLI + command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not list(jobs.glob("*.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (record,) = [p for p in jobs.glob("*.json") if not p.name.endswith(".result.json")]
    status = json.loads(record.read_text())["status"]
    fetched = subprocess.run(
        CLI + ["fetch", record.stem, "--json"], env=env, capture_output=True, text=True, timeout=600
    )
    ok = fetched.returncode == 0 and len(json.loads(fetched.stdout)["images"]) == 2
    return {
        "case": "submit killed (SIGKILL) after its record was written",
        "exit": proc.returncode,
        "printed": f"record left in status {status!r}; fetch completed it" if ok else fetched.stderr.strip(),
        "passed": ok,
        "detail": "" if ok else "fetch did not complete the job",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="work directory (default: a temporary one)")
    parser.add_argument("--json", help="write the table here")
    parser.add_argument("--kills", type=int, default=6, help="SIGKILLs during checkpoint writes")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="qmae-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    reference = work / "reference"
    if not reference.exists():
        _qmae("train", "--out", reference, *FLAGS)
    cases = [
        lambda: case_signal(work, reference, "SIGKILL at step 20", [signal.SIGKILL], 0, 20),
        lambda: case_signal(work, reference, "SIGKILL at step 250", [signal.SIGKILL], 0, 250),
        lambda: case_signal(work, reference, "Ctrl-C (SIGINT) at step 20", [signal.SIGINT], 0, 20),
        lambda: case_signal(work, reference, "Ctrl-C at step 300", [signal.SIGINT], 0, 300),
        lambda: case_signal(work, reference, "double Ctrl-C, 10 ms apart", [signal.SIGINT, signal.SIGINT], 0.01, 40),
        lambda: case_signal(work, reference, "double Ctrl-C, 50 ms apart", [signal.SIGINT, signal.SIGINT], 0.05, 120),
        lambda: case_kills_during_writes(work, reference, args.kills, seed=0),
        lambda: case_concurrent_writers(work),
        lambda: case_killed_submit(work),
    ]
    rows = []
    for case in cases:
        start = time.perf_counter()
        row = case()
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
        summary = f"{row['case']}: exit {row['exit']}; {row['printed']} {row['detail']}".rstrip()
        print(f"{'PASS' if row['passed'] else 'FAIL'}  {summary}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
