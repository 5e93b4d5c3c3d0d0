"""``qmae fill-study``: fill-in candidates chosen on held-out training images, the best tested once."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..options import DataOptions, OutputOptions, count, option
from ..studies.experiments import ExecutorOptions
from .base import STUDY_FLAGS, StudyOptions, command


@dataclass(frozen=True)
class FillStudyOptions(StudyOptions):
    seeds: int = option(3, "seeds of the chosen configuration", metavar="N", parse=count)
    no_ceiling: bool = option(False, "leave out the chosen configuration's ceiling (general unitaries)")


def register(sub: argparse._SubParsersAction) -> None:
    command(
        sub,
        "fill-study",
        run,
        (FillStudyOptions, None),
        (DataOptions, ("data_dir", "limit")),
        *STUDY_FLAGS,
        help="a QMAE that fills in the patch: candidates chosen on held-out training images, the best tested once",
        description="Train the fill-in candidates (position conditioning, ancilla-assisted decoder, composite loss) "
        "with seed 0 and --holdout, choose on the held-out training images, train the chosen one's other seeds, "
        "score them on the test split next to the mean-image and linear fills and the chosen one's ceiling "
        "(general unitaries, the same seeds); write results.json and report.md.",
    )


def run(args: argparse.Namespace) -> int:
    from ..studies.fill import fill_study

    opts, data = FillStudyOptions.from_args(args), DataOptions.from_args(args)
    result = fill_study(
        opts.out,
        seeds=opts.seeds,
        data_dir=data.data_dir,
        limit=data.limit,
        quick=opts.quick,
        progress=OutputOptions.from_args(args).progress,
        ceiling=not opts.no_ceiling,
        executor=ExecutorOptions.from_args(args),
    )
    print(f"chosen on held-out training images: {result.chosen}")
    for v in result.verdicts:
        print(f"- {v.sentence}")
    if result.ceiling_verdict is not None:
        print(f"- {result.ceiling_verdict.sentence}")
    print(f"wrote {opts.out}/results.json, report.md")
    return 0
