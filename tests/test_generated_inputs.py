"""Generated bad (and good) inputs for ``qmae train`` (issue 21, item 8): Hypothesis draws flag
combinations from the option space, valid values, edge values and garbage, and every one must keep
the contract: exit 0 with a finite, resumable run, or exit 2 with one line naming the problem and
no traceback, leaving no directory that ``--out`` refuses and ``--resume`` cannot continue.

CI runs a bounded number of examples (``QMAE_GENERATED_EXAMPLES``, default 40); the campaign in
``docs/reliability.md`` ran 500.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
from pathlib import Path

import hypothesis
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qmae_qiskit.cli import main

EXAMPLES = int(os.environ.get("QMAE_GENERATED_EXAMPLES", "40"))
BASE = ["--image-size", "4", "--patch-size", "2x2", "--limit", "32", "--batch-size", "16", "--epochs", "1"]
BASE += ["--eval-limit", "0", "--no-progress"]

GARBAGE = st.sampled_from(["", "x", "-", "nan", "inf", "-inf", "1e308", "-1e308", "0x10", "1,2", " 1", "None"])
SMALL_INTS = st.sampled_from(["-1", "0", "1", "2", "3", "99999999999999999999999", "1.5", "-0"])
FRACTIONS = st.sampled_from(["0", "0.25", "0.5", "1", "-0.25", "1e-300", "0.999999"])
WEIGHTS = st.sampled_from(["0", "0.01", "0.5", "1e308", "-1", "1e-320"])

FLAGS: dict[str, st.SearchStrategy[str]] = {
    "--lr": st.one_of(st.sampled_from(["0.02", "1e-9", "1e308", "0", "-0.1"]), GARBAGE),
    "--epochs": st.one_of(st.sampled_from(["-1", "0", "1", "2"]), GARBAGE),
    "--batch-size": st.one_of(st.sampled_from(["-1", "0", "1", "16", "64"]), GARBAGE),
    "--layers": st.one_of(st.sampled_from(["-1", "0", "1", "2"]), GARBAGE),
    "--latent-qubits": st.one_of(SMALL_INTS, GARBAGE),
    "--mask-ratio": st.one_of(FRACTIONS, GARBAGE),
    "--seed": st.one_of(SMALL_INTS, GARBAGE),
    "--trash-weight": st.one_of(WEIGHTS, GARBAGE),
    "--keep-weight": st.one_of(WEIGHTS, GARBAGE),
    "--holdout": st.one_of(st.sampled_from(["-1", "0", "4", "31", "32", "1000"]), GARBAGE),
    "--ancillas": st.one_of(st.sampled_from(["-1", "0", "1", "2", "5"]), GARBAGE),
    "--embedding-layers": st.one_of(st.sampled_from(["0", "1", "65"]), GARBAGE),
    "--patch-size": st.one_of(st.sampled_from(["2x2", "1x1", "3x3", "4x4", "2x4", "0x2", "2"]), GARBAGE),
    "--image-size": st.one_of(st.sampled_from(["2", "3", "4", "8", "128"]), GARBAGE),
    "--limit": st.one_of(st.sampled_from(["-1", "0", "1", "8", "32"]), GARBAGE),
    "--checkpoint-every": st.one_of(SMALL_INTS, GARBAGE),
    "--test-fraction": st.one_of(FRACTIONS, GARBAGE),
}
CHOICES = {
    "--objective": ["reset", "postselect", "Reset", ""],
    "--condition": ["none", "position", "patch"],
    "--loss": ["fidelity", "composite", "mse"],
    "--decoder": ["tied", "untied", "none"],
    "--token": ["shared", "per-patch", "per_patch"],
    "--pairs": ["all", "line", "line2", "ring"],
    "--ansatz": ["blocks", "unitary", "Blocks"],
    "--model": ["qmae", "qae", "mae"],
    "--engine": ["exact", "aer"],
    "--schedule": ["constant", "cosine", "linear"],
}
ALL = {**FLAGS, **{flag: st.sampled_from(values) for flag, values in CHOICES.items()}}


@st.composite
def argv(draw) -> list[str]:
    flags = draw(st.lists(st.sampled_from(sorted(ALL)), min_size=1, max_size=4, unique=True))
    out: list[str] = []
    for flag in flags:
        out += [flag, draw(ALL[flag])]
    return out


def check_contract(flags: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(["train", "--out", str(out), *BASE, *flags])
            except SystemExit as exc:  # argparse's own refusals exit from the parser
                code = exc.code
        text = err.getvalue()
        assert "Traceback" not in text and "unexpected" not in text, (flags, text)
        if code == 0:
            state = torch.load(out / "checkpoint.pt", weights_only=False)
            assert all(torch.isfinite(v).all() for v in state["model"].values()), flags
            return 0
        assert code == 2, (flags, code, text)
        errors = [line for line in text.splitlines() if line.startswith("qmae:")]
        assert len(errors) == 1, (flags, text)
        assert not out.exists() or (out / "checkpoint.pt").exists(), (flags, "an unusable run directory was left")
        return code


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("QMAE_GENERATED_RANDOM"),  # CI: the same examples every run
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(argv())
def test_every_generated_train_command_keeps_the_contract(flags):
    hypothesis.event(f"exit {check_contract(flags)}")  # --hypothesis-show-statistics: how many trained


def test_the_contract_check_itself_catches_a_traceback(monkeypatch):
    """The generator's assertion is live: a command that fails with a traceback is caught."""
    import qmae_qiskit.commands.train as train_command

    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(train_command, "run", broken)
    with pytest.raises(AssertionError):
        check_contract([])
    assert math.isfinite(1.0)
