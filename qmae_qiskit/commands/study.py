"""``qmae study``: inpainting across architectures and seeds, with the ceiling and the pass-through rows."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..options import DataOptions, OutputOptions, count, option
from ..studies.experiments import ExecutorOptions
from .base import STUDY_FLAGS, StudyOptions, command


@dataclass(frozen=True)
class GridOptions(StudyOptions):
    seeds: int = option(3, "seeds per configuration", metavar="N", parse=count)
    ceiling_seeds: int = option(1, "seeds per ceiling configuration", metavar="N", parse=count)


def register(sub: argparse._SubParsersAction) -> None:
    command(
        sub,
        "study",
        run,
        (GridOptions, None),
        (DataOptions, None),
        *STUDY_FLAGS,
        help="inpainting across architectures and seeds, with the ceiling and the pass-through rows",
        description="Train or reuse QMAE at 25 % over objective x layers x latent x decoder x token and the "
        "general-unitary ceiling, score every run on the test split, write results.json, report.md and figures.",
    )


def run(args: argparse.Namespace) -> int:
    from ..studies.study import study

    opts, data = GridOptions.from_args(args), DataOptions.from_args(args)
    result = study(
        opts.out,
        seeds=opts.seeds,
        ceiling_seeds=opts.ceiling_seeds,
        data_dir=data.data_dir,
        dataset=data.dataset,
        limit=data.limit,
        quick=opts.quick,
        progress=OutputOptions.from_args(args).progress,
        executor=ExecutorOptions.from_args(args),
    )
    for v in result.verdicts:
        print(f"- {v.sentence}")
    print(f"wrote {opts.out}/results.json, report.md, reconstructions_*.png")
    return 0
