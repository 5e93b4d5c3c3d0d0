"""``qmae circuit``: the transpile report of a run's circuits for a backend (and a drawing)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from ..options import Options, OutputOptions, option
from ..runtime.options import SubmitOptions
from ..runtime.transpile import HARDWARE_VARIANTS
from .base import BackendOptions, RunOptions, command


@dataclass(frozen=True)
class CircuitOptions(Options):
    """``qmae circuit``'s own options."""

    variant: tuple[str, ...] | None = option(
        None,
        "repeatable; default paper, reset, destructive (a run with ancillas: compute_uncompute, postselect, "
        "postselect_flag)",
        choices=HARDWARE_VARIANTS,
        repeat=True,
    )
    draw: str | None = option(
        None, "also write a drawing of the first variant's ISA circuit (PNG, or .txt for text)", metavar="PATH"
    )


def register(sub: argparse._SubParsersAction) -> None:
    command(
        sub,
        "circuit",
        run,
        (RunOptions, None),
        (BackendOptions, None),
        (CircuitOptions, None),
        (SubmitOptions, ("optimization_level", "embedding_layers")),
        (OutputOptions, ("json",)),
        help="transpile report of a run's circuits for a backend",
        description="Per variant: qubits, depth, two-qubit gates and the estimated success probability on a backend.",
        wraps_errors=True,
    )


def run(args: argparse.Namespace) -> int:
    from ..model import load_model
    from ..runtime.backends import get_backend
    from ..runtime.transpile import as_dicts, isa_circuit, report_table, transpile_report

    opts, job = CircuitOptions.from_args(args), SubmitOptions.from_args(args)
    run_dir, backend_name = RunOptions.from_args(args).run_dir, BackendOptions.from_args(args).backend
    as_json = OutputOptions.from_args(args).json

    model = load_model(run_dir).set_embedding(job.embedding_layers)
    backend = get_backend(backend_name)
    # an ancilla-assisted decoder has compute-uncompute and post-selected forms only (circuits/fidelity.py)
    default = (
        ("compute_uncompute", "postselect", "postselect_flag") if model.ancillas else ("paper", "reset", "destructive")
    )
    variants = tuple(opts.variant or default)
    rows = transpile_report(model, backend, variants, optimization_level=job.optimization_level)
    print(json.dumps(as_dicts(rows)) if as_json else report_table(rows))
    if opts.draw:
        isa = isa_circuit(model, backend, variants[0], optimization_level=job.optimization_level)
        if opts.draw.endswith(".txt"):
            with open(opts.draw, "w") as fh:
                fh.write(str(isa.draw(output="text", fold=-1, idle_wires=False)))
        else:
            isa.draw(output="mpl", idle_wires=False, fold=200, filename=opts.draw)
    return 0
