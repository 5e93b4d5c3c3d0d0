"""``qmae submit``: sample a run's circuits for test images on IBM Quantum (or locally)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from ..options import Options, OutputOptions, option
from ..runtime.options import PROFILES, SubmitOptions
from .base import BackendOptions, RunOptions, command, given
from .fetch import print_result


@dataclass(frozen=True)
class SubmitCommandOptions(Options):
    """``qmae submit``'s options besides the job's own (:class:`~qmae_qiskit.runtime.SubmitOptions`)."""

    profile: str | None = option(
        None,
        "a configuration measured in docs/hardware.md (best: the lowest error on fake_fez); explicit flags override it",
        choices=tuple(PROFILES),
    )
    no_wait: bool = option(False, "return after submitting; `qmae fetch` later")


def register(sub: argparse._SubParsersAction) -> None:
    command(
        sub,
        "submit",
        run,
        (RunOptions, None),
        (BackendOptions, None),
        (SubmitCommandOptions, None),
        (SubmitOptions, None, "job options (qmae_qiskit.runtime.SubmitOptions)"),
        (OutputOptions, ("json",)),
        help="run inference on IBM Quantum (or locally) for test images",
        description="Sample the fidelity (or reconstruction, or latent-features) circuit of the first N test images "
        "in one PUB, inside a Batch.",
        wraps_errors=True,
    )


def run(args: argparse.Namespace) -> int:
    from ..runtime.retrieval import fetch
    from ..runtime.submission import submit

    run_dir, backend = RunOptions.from_args(args).run_dir, BackendOptions.from_args(args).backend
    opts, as_json = SubmitCommandOptions.from_args(args), OutputOptions.from_args(args).json
    SubmitOptions.from_args(args)  # the job's options checked as given, before the profile is applied
    job = {k: v for k, v in given(args, SubmitOptions).items() if k != "profile"}  # the profile is --profile's
    record = submit(run_dir, backend=backend, profile=opts.profile, wait=not opts.no_wait, **job)
    notes = []
    if record.local and (args.dynamical_decoupling or args.twirling):
        notes.append(
            "local testing mode: dynamical decoupling has no effect (no idle-time noise is simulated); options are "
            "recorded as given"
        )
    if opts.profile == "best":
        from ..checkpoint import load_config

        pairs = [tuple(p) for p in load_config(run_dir)["architecture"]["pairs"]]
        if any(j != i + 1 for i, j in pairs):
            notes.append(
                "--profile best was measured on a line-encoder run (qmae train --pairs line); this run's encoder has "
                f"{len(pairs)} pairs "
                "that need routing: expect more two-qubit gates and a larger error (docs/hardware.md)"
            )
    note = "; ".join(notes) or None
    if as_json:
        out = {
            "job_id": record.job_id,
            "record_id": record.record_id,
            "backend": record.backend,
            "status": record.status,
            "local": record.local,
        }
        if note:
            out["note"] = note
        print(json.dumps(out))
        return 0
    if note:
        print(note, file=sys.stderr)
    print(
        f"job {record.job_id} on {record.backend} ({record.variant}, {len(record.indices)} images x {record.shots} "
        f"shots): {record.status}; record {record.record_id}"
    )
    if record.status == "done":
        print_result(fetch(record.record_id))
    return 0
