"""``qmae evaluate``: every metric of a trained run on held-out images."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

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
    out = evaluate_run(
        run_dir,
        split=opts.split,
        data_dir=data.data_dir,
        limit=data.limit,
        with_accuracy=not opts.no_accuracy,
        progress=not output.json,
        embedding_layers=args.embedding_layers,
    )
    if output.json:
        print(json.dumps(out))
        return 0
    print(f"{out['images']} {opts.split} images ({out['source']}), the run's saved masks, visible-pixel scaling:")
    keys: tuple[str, ...] = ("fidelity", "keep_probability", "fidelity_per_shot", "cosine_similarity", "ssim")
    keys += ("ssim_torchmetrics", "psnr", "masked_psnr", "accuracy", "composite_fidelity", "composite_accuracy")
    for key in keys:
        if key in out:
            print(f"  {key:<18} {out[key]:.4f} ± {out[key + '_stderr']:.4f}")
    print("pass-through on the same masks (the filled input itself):")
    for name, row in out["passthrough"].items():
        accuracy = f", accuracy {row['accuracy']:.4f}" if "accuracy" in row else ""
        print(f"  {name:<18} fidelity {row['fidelity']:.4f}, masked PSNR {row['masked_psnr']:.2f} dB{accuracy}")
    return 0
