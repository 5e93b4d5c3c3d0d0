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
    dry_run: bool = option(
        False,
        "submit nothing: predict what the device will return for the images (the noisy engine under its "
        "calibration mapped onto the circuit, the compute-uncompute form), next to the exact values",
    )


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
    job_options = SubmitOptions.from_args(args)  # the job's options checked as given, before the profile
    if opts.dry_run:
        return _dry_run(run_dir, backend, job_options, as_json)
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


def _dry_run(run_dir: str, backend: str, job: SubmitOptions, as_json: bool) -> int:
    """``--dry-run``: the prediction, and nothing submitted or written."""
    from ..runtime.prediction import predict

    if job.embedding_layers is not None:
        raise ValueError("--dry-run predicts the circuit with the exact embedding; drop --embedding-layers")
    found = predict(
        run_dir, backend, images=job.images, data_dir=job.data_dir, optimization_level=job.optimization_level
    )
    if as_json:
        print(json.dumps(found.as_json()))
        return 0
    n = found.noise
    print(
        f"{backend}: {n.isa_two_qubit_gates} two-qubit gates ({n.two_qubit_gate}, mean error {n.two_qubit_error:.4f}, "
        f"{n.routing_factor:.2f} per logical CNOT); per block a depolarizing error {n.block_error:.4f}, the "
        f"embedding {n.input_error:.4f}, readout {n.readout_error:.4f}; nothing submitted"
    )
    for i, (e, v, r) in enumerate(zip(found.exact, found.noisy, found.returned)):
        print(f"  image {i:>5}: exact {e:.4f}   noisy circuit {v:.4f}   a compute_uncompute job returns {r:.4f}")
    mean = sum(found.returned) / len(found.returned)
    print(f"  mean: exact {sum(found.exact) / len(found.exact):.4f}, predicted return {mean:.4f}")
    return 0
