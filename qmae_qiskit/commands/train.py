"""``qmae train``: train a QMAE or QAE into a run directory, or resume one."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from ..data import ENV_DATA_DIR
from ..model import ModelConfig
from ..options import Options, OutputOptions, option
from ..training import TrainConfig
from .base import command


@dataclass(frozen=True)
class TrainTarget(Options):
    """Where ``qmae train`` writes: a new run, or the run it continues."""

    out: str | None = option(None, "new run directory", metavar="RUN_DIR", exclusive="target")
    resume: str | None = option(
        None, "continue an interrupted run (no other options needed)", metavar="RUN_DIR", exclusive="target"
    )


def register(sub: argparse._SubParsersAction) -> None:
    command(
        sub,
        "train",
        run,
        (TrainTarget, None),
        # every option from its one declaration (ModelConfig, TrainConfig): type, choices, help, default
        (ModelConfig, None, "architecture (qmae_qiskit.ModelConfig)"),
        (TrainConfig, None, "training (qmae_qiskit.TrainConfig)"),
        (OutputOptions, ("no_progress",)),
        help="train a QMAE or QAE into a run directory",
        description="Train a QMAE or QAE (Adam on 1 - F).",
    )


def run(args: argparse.Namespace) -> int:
    from ..training import resume, train

    target = TrainTarget.from_args(args)
    progress = OutputOptions.from_args(args).progress
    options = {name: getattr(args, name) for name in TrainConfig.flat_names() if hasattr(args, name)}
    if target.resume:
        result = resume(target.resume, progress=progress, **options)
    else:
        config = TrainConfig.of(**{k: v for k, v in options.items() if v is not None})
        assert target.out is not None  # argparse: --out or --resume
        result = train(config, out=target.out, progress=progress)
        if (
            config.dataset == "mnist"
            and not config.data_dir
            and not config.download
            and not os.environ.get(ENV_DATA_DIR)
        ):
            print(
                "data: the embedded MNIST sample (4,000 train / 1,000 test images); --data-dir DIR or --download for "
                "full MNIST",
                file=sys.stderr,
            )
    if result.history:
        print(f"final batch fidelity {result.history[-1]['fidelity']:.4f}", end="")
    if result.eval_fidelity is not None:
        print(f"; held-out fidelity {result.eval_fidelity:.4f}", end="")
    print(f"  ({result.run_dir})")
    return 0
