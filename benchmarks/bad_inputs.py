r"""Bad inputs against the real ``qmae`` command: what each prints, and its exit code.

    python benchmarks/bad_inputs.py --json docs/reliability_cases.json

Builds a small trained run and the broken files each case needs in a temporary directory, runs
every case as a user would, and records the command's exit code and what it printed on stderr
(machine-specific paths replaced by ``WORK``). ``docs/reliability.md`` shows the table; the tests
in ``tests/test_cli_hardening.py``, ``tests/runtime/test_hardening.py`` and ``tests/test_datasets.py``
assert each line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

CLI = [sys.executable, "-m", "qmae_qiskit.cli"]
SMALL = ["--image-size", "4", "--patch-size", "2x2", "--limit", "64", "--batch-size", "16", "--eval-limit", "0"]


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/qmae-pwned",))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the cases here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qmae-bad-"))
    env = {**os.environ, "QMAE_JOBS_DIR": str(work / "jobs"), "QISKIT_IBM_TOKEN": "secret-token", "HOME": str(work)}

    def run(*command) -> subprocess.CompletedProcess:
        return subprocess.run(CLI + [str(c) for c in command], capture_output=True, text=True, timeout=600, env=env)

    good = work / "run"
    assert run("train", "--out", good, "--epochs", "1", "--no-progress", *SMALL).returncode == 0

    def copy(name: str) -> Path:
        target = work / name
        shutil.copytree(good, target, ignore=shutil.ignore_patterns(".lock", ".writer"))
        return target

    crafted = copy("crafted")
    buffer = io.BytesIO()
    torch.save({"model": _Payload()}, buffer)
    (crafted / "checkpoint.pt").write_bytes(buffer.getvalue())
    masks = copy("masks")
    np.savez_compressed(
        masks / "eval_masks.npz", patches=np.zeros((5, 3), np.uint8), image_size=16, patch=np.array([8, 8])
    )
    noise = copy("noise")
    (noise / "eval_masks.npz").write_bytes(os.urandom(300))
    listed = copy("listed")
    (listed / "config.json").write_text(json.dumps([1, 2]))
    negative = copy("negative")
    config = json.loads((negative / "config.json").read_text())
    config["options"]["batch_size"] = -3
    (negative / "config.json").write_text(json.dumps(config))
    garbage = work / "garbage" / "MNIST" / "raw"
    garbage.mkdir(parents=True)
    for name in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
        (garbage / f"{name}-ubyte").write_bytes(os.urandom(200))
    afile = work / "file.txt"
    afile.write_text("x")
    foreign = work / "notes"
    foreign.mkdir()
    (foreign / "metrics.jsonl").write_text("mine\n")
    empty = work / "empty"
    empty.mkdir()

    cases = [
        ("a crafted checkpoint.pt (pickle that runs code)", ["evaluate", crafted, "--no-accuracy"]),
        ("garbage MNIST files", ["train", "--out", work / "r1", "--data-dir", work / "garbage", *SMALL]),
        ("--out is a file", ["train", "--out", afile, *SMALL]),
        ("--out is a foreign directory", ["train", "--out", foreign, *SMALL]),
        ("--out name over the length limit", ["train", "--out", work / ("x" * 300), *SMALL]),
        ("config.json is a JSON list", ["train", "--resume", listed]),
        ("config.json with batch_size -3", ["train", "--resume", negative]),
        ("eval_masks.npz of another architecture", ["evaluate", masks, "--no-accuracy", "--limit", "5"]),
        ("eval_masks.npz of random bytes", ["evaluate", noise, "--no-accuracy", "--limit", "5"]),
        ("an unknown option value", ["train", "--out", work / "r2", "--engine", "pennylane"]),
        ("an unknown dataset", ["train", "--out", work / "r3", "--dataset", "imagenet", *SMALL]),
        ("an empty image folder", ["train", "--out", work / "r4", "--dataset", f"folder:{empty}", *SMALL]),
        ("submit --images 100000", ["submit", good, "--backend", "aer", "--images", "100000"]),
        ("submit --shots 10**12", ["submit", good, "--backend", "aer", "--shots", str(10**12)]),
        ("a circuit wider than the device", ["submit", good, "--backend", "fake_belem", "--variant", "reset"]),
        ("a real device with a token but no network", ["submit", good, "--backend", "ibm_fez"]),
        ("fetch of an unknown job", ["fetch", "no-such-job"]),
    ]
    rows = []
    for label, command in cases:
        done = run(*command)
        printed = done.stderr.strip().replace(str(work), "WORK")
        assert "secret-token" not in done.stdout + done.stderr
        rows.append({"case": label, "command": "qmae " + " ".join(str(c) for c in command).replace(str(work), "WORK"),
                     "exit": done.returncode, "printed": printed})  # fmt: skip
        print(f"[{done.returncode}] {label}: {printed}", flush=True)
    assert not Path("/tmp/qmae-pwned").exists(), "the crafted checkpoint ran code"
    if args.json:
        Path(args.json).write_text(json.dumps({"cases": rows}, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
