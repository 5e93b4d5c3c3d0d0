"""``qmae circuit / submit / jobs / fetch``: the command-line side of :mod:`qmae_qiskit.runtime`."""

from __future__ import annotations

import argparse
import json
import sys

from ..options import OptionError, add_flags
from .options import PROFILES, SubmitOptions
from .transpile import HARDWARE_VARIANTS

__all__ = ["add_commands", "run_command", "COMMANDS"]

COMMANDS = ("circuit", "submit", "jobs", "fetch")


def add_commands(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "circuit",
        help="transpile report of a run's circuits for a backend",
        description="Per variant: qubits, depth, two-qubit gates and the estimated success probability on a backend.",
    )
    c.add_argument("run_dir", metavar="RUN_DIR")
    c.add_argument("--backend", required=True, help="aer, a fake device (fake_fez, ...) or a real one (ibm_fez, ...)")
    c.add_argument(
        "--variant",
        action="append",
        choices=HARDWARE_VARIANTS,
        help="repeatable; default paper, reset, destructive (a run with ancillas: compute_uncompute, postselect, "
        "postselect_flag)",
    )
    c.add_argument("--optimization-level", type=int, default=3, choices=(0, 1, 2, 3))
    c.add_argument(
        "--embedding-layers", type=int, metavar="L", help="approximate ladder embedding with L layers (default: exact)"
    )
    c.add_argument(
        "--draw", metavar="PATH", help="also write a drawing of the first variant's ISA circuit (PNG, or .txt for text)"
    )
    c.add_argument("--json", action="store_true", help="print JSON")

    s = sub.add_parser(
        "submit",
        help="run inference on IBM Quantum (or locally) for test images",
        description="Sample the fidelity (or reconstruction, or latent-features) circuit of the first N test images "
        "in one PUB, inside a Batch.",
    )
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument("--backend", required=True, help="aer, a fake device (fake_fez, ...) or a real one (ibm_fez, ...)")
    s.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        help="a configuration measured in docs/hardware.md (best: the lowest error on fake_fez); explicit flags "
        "override it",
    )
    add_flags(s.add_argument_group("job options (qmae_qiskit.runtime.SubmitOptions)"), SubmitOptions)
    s.add_argument("--no-wait", action="store_true", help="return after submitting; `qmae fetch` later")
    s.add_argument("--json", action="store_true", help='print one JSON object with "job_id"')

    j = sub.add_parser("jobs", help="list job records and their status")
    j.add_argument("--json", action="store_true")

    f = sub.add_parser("fetch", help="get a job's counts and score them against the exact simulator")
    f.add_argument("job_id", metavar="JOB_ID", help="the provider's job id or the record id")
    f.add_argument("--png", help="where to write reconstructed images (reconstruction jobs)")
    f.add_argument(
        "--accuracy",
        action="store_true",
        help="reconstruction jobs: the ResNet18 accuracy of the composites from counts, the exact composites and "
        "the mean-image fill (the classifier of qmae evaluate; trained once if not cached)",
    )
    f.add_argument("--json", action="store_true")


def run_command(args: argparse.Namespace) -> int:
    """Run one runtime command. Errors from Qiskit or the runtime client become one line (set
    ``QMAE_DEBUG=1`` for the traceback); the job record, if any, is already on disk."""
    import os

    try:
        return {"circuit": _circuit, "submit": _submit, "jobs": _jobs, "fetch": _fetch}[args.command](args)
    except (OptionError, ValueError, KeyboardInterrupt, FileNotFoundError):
        raise
    except Exception as exc:
        if os.environ.get("QMAE_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(
            f"{args.command} failed: {type(exc).__name__}: {first} (QMAE_DEBUG=1 shows the traceback)"
        ) from None


def _circuit(args: argparse.Namespace) -> int:
    from ..model import load_model
    from .backends import get_backend
    from .transpile import as_dicts, isa_circuit, report_table, transpile_report

    model = load_model(args.run_dir).set_embedding(args.embedding_layers)
    backend = get_backend(args.backend)
    # an ancilla-assisted decoder has compute-uncompute and post-selected forms only (circuits/fidelity.py)
    default = (
        ("compute_uncompute", "postselect", "postselect_flag") if model.ancillas else ("paper", "reset", "destructive")
    )
    variants = tuple(args.variant or default)
    rows = transpile_report(model, backend, variants, optimization_level=args.optimization_level)
    print(json.dumps(as_dicts(rows)) if args.json else report_table(rows))
    if args.draw:
        isa = isa_circuit(model, backend, variants[0], optimization_level=args.optimization_level)
        if args.draw.endswith(".txt"):
            with open(args.draw, "w") as fh:
                fh.write(str(isa.draw(output="text", fold=-1, idle_wires=False)))
        else:
            isa.draw(output="mpl", idle_wires=False, fold=200, filename=args.draw)
    return 0


def _submit(args: argparse.Namespace) -> int:
    from .retrieval import fetch
    from .submission import submit

    given = {name: getattr(args, name) for name in SubmitOptions.names() if getattr(args, name, None) is not None}
    record = submit(args.run_dir, backend=args.backend, profile=args.profile, wait=not args.no_wait, **given)
    notes = []
    if record.local and (args.dynamical_decoupling or args.twirling):
        notes.append(
            "local testing mode: dynamical decoupling has no effect (no idle-time noise is simulated); options are "
            "recorded as given"
        )
    if args.profile == "best":
        from ..checkpoint import load_config

        pairs = [tuple(p) for p in load_config(args.run_dir)["architecture"]["pairs"]]
        if any(j != i + 1 for i, j in pairs):
            notes.append(
                "--profile best was measured on a line-encoder run (qmae train --pairs line); this run's encoder has "
                f"{len(pairs)} pairs "
                "that need routing: expect more two-qubit gates and a larger error (docs/hardware.md)"
            )
    note = "; ".join(notes) or None
    if args.json:
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
        _print_result(fetch(record.record_id))
    return 0


def _jobs(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .records import jobs_dir
    from .retrieval import list_jobs

    records = list_jobs()
    if args.json:
        bulky = (
            "exact",
            "masks",
            "exact_embedded",
            "training_masks",
            "training_exact",
            "training_exact_full",
            "bases",
        )
        print(json.dumps([{k: v for k, v in asdict(r).items() if k not in bulky} for r in records]))
        return 0
    if not records:
        print(f"no job records in {jobs_dir()}")
    for r in records:
        print(
            f"{r.record_id}  {r.job_id or '-':<36}  {r.backend:<12} {r.variant:<17} {len(r.indices):>3} x {r.shots:<6}"
            f" {r.status}"
        )
    return 0


def _print_features(result) -> None:
    f = result.features
    for row in result.images:
        err = sum(abs(a - b) for a, b in zip(row["features"], row["exact"])) / len(row["exact"])
        print(
            f"  image {row['index']:>5}: {len(row['features'])} features, mean |measured - exact| {err:.4f}, "
            f"mean standard error {sum(row['stderr']) / len(row['stderr']):.4f}"
        )
    print(
        f"  {f['kind']} features of {len(result.images)} images, {len(f['bases'])} bases x {result.record.shots} shots "
        f"({f['shots_per_image']} per image): mean |measured - exact| {f['mean_abs_error']:.4f} (mean standard "
        f"error {f['mean_stderr']:.4f}); correlation with exact {f['correlation']:.3f}, slope {f['slope']:.3f}; "
        "the values: qmae fetch --json"
    )


def _print_result(result) -> None:
    if result.features is not None:
        _print_features(result)
        return
    reconstruction = result.record.variant.startswith("reconstruction")
    for row in result.images:
        err = f" ± {row['stderr']:.4f}" if row["stderr"] is not None else ""
        label = "distribution fidelity with the exact reconstruction" if reconstruction else "fidelity"
        exact = "" if reconstruction else f"  (exact {row['exact']:.4f})"
        if row.get("raw") is not None and abs(row["raw"] - row["fidelity"]) > 0:
            exact = f"  (unmitigated {row['raw']:.4f}){exact}"
        if row.get("exact_embedded") is not None:
            exact += f"  (exact with the approximate embedding {row['exact_embedded']:.4f})"
        if row.get("keep_fraction") is not None:
            expected = f", exact {row['exact_keep']:.3f}" if row.get("exact_keep") is not None else ""
            exact += f"  (kept {row['keep_fraction']:.3f} of the shots{expected})"
        print(f"  image {row['index']:>5}: {label} {row['fidelity']:.4f}{err}{exact}")
    kept = f"; kept {result.mean_keep_fraction:.3f} of the shots" if result.mean_keep_fraction is not None else ""
    print(
        f"  mean {result.mean_fidelity:.4f} ± {result.mean_stderr:.4f}; exact simulator {result.mean_exact:.4f}{kept}"
    )
    first = result.images[0] if result.images else {}
    if "composite_fidelity" in first:
        keys = [k for k in first if "composite" in k or "psnr" in k]
        mean = {k: sum(r[k] for r in result.images) / len(result.images) for k in keys}
        print(
            f"  composite: fidelity {mean['composite_fidelity']:.4f} (exact {mean['exact_composite_fidelity']:.4f}), "
            f"masked PSNR {mean['masked_psnr']:.2f} dB (exact {mean['exact_masked_psnr']:.2f} dB)"
        )
    if result.composite_accuracy is not None:
        a = result.composite_accuracy
        print(
            f"  composite accuracy {100 * a['device']:.1f} % from counts, {100 * a['exact']:.1f} % exact, mean-image "
            f"fill {100 * a['mean_image_fill']:.1f} %, originals {100 * a['original']:.1f} % ({a['images']} images)"
        )
    if result.png:
        print(f"  images: {result.png}")


def _fetch(args: argparse.Namespace) -> int:
    from .retrieval import fetch

    result = fetch(args.job_id, png=args.png, accuracy=args.accuracy)
    if args.json:
        print(json.dumps(result.as_json()))
    else:
        print(
            f"job {result.record.job_id} on {result.record.backend} ({result.record.variant}, {result.record.shots} "
            "shots):"
        )
        _print_result(result)
    return 0
