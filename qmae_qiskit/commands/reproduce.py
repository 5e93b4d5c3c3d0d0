"""``qmae reproduce``: the paper's evaluation section, with the inpainting table."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..options import DataOptions, OutputOptions, count, option
from ..studies.experiments import ExecutorOptions
from .base import STUDY_FLAGS, StudyOptions, command


@dataclass(frozen=True)
class ReproduceOptions(StudyOptions):
    seeds: int = option(1, "seeds per configuration: rows become mean ± std", metavar="N", parse=count)


def register(sub: argparse._SubParsersAction) -> None:
    command(
        sub,
        "reproduce",
        run,
        (ReproduceOptions, None),
        (DataOptions, ("data_dir", "dataset")),
        *STUDY_FLAGS,
        help="re-run the paper's evaluation section, with the inpainting table (REPORT.md)",
        description="Train or reuse QMAE/QAE at 25 % (reset, + trash term, post-selected) and QMAE at 12.5 % and "
        "50 %, evaluate on the test split next to the pass-through rows, write tables, figures and an honest report.",
    )


def run(args: argparse.Namespace) -> int:
    from ..studies.reproduce import reproduce

    opts, data = ReproduceOptions.from_args(args), DataOptions.from_args(args)
    result = reproduce(
        opts.out,
        quick=opts.quick,
        data_dir=data.data_dir,
        progress=OutputOptions.from_args(args).progress,
        seeds=opts.seeds,
        dataset=data.dataset,
        executor=ExecutorOptions.from_args(args),
    )
    for name in ("qmae-25", "qae-25", "qmae-25-postselect"):
        s = {k: v["mean"] for k, v in result.summary[name].items()}
        print(
            f"{name:<19} fidelity {s['fidelity']:.3f} (gain {s['fidelity_gain']:+.3f}), masked PSNR "
            f"{s['masked_psnr']:.2f} dB" + (f", accuracy {100 * s['accuracy']:.2f} %" if "accuracy" in s else "")
        )
    fill = result.passthrough["mean_image"]
    print(f"{'mean-image fill':<19} fidelity {fill['fidelity']:.3f}, masked PSNR {fill['masked_psnr']:.2f} dB")
    print(f"wrote {opts.out}/inpainting.md, table1.md, table1.csv, table1.json, fig6-8.png, inpainting.png, REPORT.md")
    return 0
