"""``qmae evaluate``: every metric of a trained run on held-out images."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from ..metrics import MetricSummary
from ..model import ModelConfig
from ..options import DataOptions, Options, OutputOptions, option
from .base import RunOptions, command


@dataclass(frozen=True)
class EvaluateOptions(Options):
    """What ``qmae evaluate`` scores besides the run and its data."""

    split: str = option("test", "the split scored", choices=("test", "train"))
    no_accuracy: bool = option(False, "skip the ResNet18 accuracy (the classifier trains once, then is cached)")


def register(sub: argparse._SubParsersAction) -> None:
    command(
        sub,
        "evaluate",
        run,
        (RunOptions, None),
        (DataOptions, ("data_dir", "limit")),
        (EvaluateOptions, None),
        (ModelConfig, ("embedding_layers",)),
        (OutputOptions, ("json",)),
        help="score a trained run on held-out images",
        description="Fidelity, cosine similarity, SSIM, PSNR and ResNet18 accuracy of a trained run on held-out "
        "images, with the run's saved evaluation masks.",
    )


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_run

    run_dir = RunOptions.from_args(args).run_dir
    data, opts, output = DataOptions.from_args(args), EvaluateOptions.from_args(args), OutputOptions.from_args(args)
    report = evaluate_run(
        run_dir,
        split=opts.split,
        data_dir=data.data_dir,
        limit=data.limit,
        with_accuracy=not opts.no_accuracy,
        progress=not output.json,
        embedding_layers=args.embedding_layers,
    )
    if output.json:
        print(json.dumps(report.to_json()))
        return 0
    print(f"{report.images} {opts.split} images ({report.source}), the run's saved masks, visible-pixel scaling:")
    shown: list[tuple[str, MetricSummary]] = [(k, report.own[k]) for k in OWN if k in report.own]
    shown += [(f"composite_{k}", report.composite[k]) for k in ("fidelity", "accuracy") if k in report.composite]
    for key, summary in sorted(shown, key=lambda item: ORDER.index(item[0])):
        print(f"  {key:<18} {summary.mean:.4f} ± {summary.stderr:.4f}")
    print("pass-through on the same masks (the filled input itself):")
    for name, row in report.passthrough.items():
        m = row.metrics
        accuracy = f", accuracy {m.accuracy.mean:.4f}" if "accuracy" in m else ""
        print(f"  {name:<18} fidelity {m.fidelity.mean:.4f}, masked PSNR {m.masked_psnr.mean:.2f} dB{accuracy}")
    return 0


# what the table shows, in its order (the rest: --json)
OWN: tuple[str, ...] = ("fidelity", "keep_probability", "fidelity_per_shot", "cosine_similarity", "ssim")
OWN += ("ssim_torchmetrics", "psnr", "masked_psnr", "accuracy")
ORDER = (*OWN, "composite_fidelity", "composite_accuracy")
