"""``qmae bench``: every training path benchmarked in one run (the figures docs/benchmarks.md quotes)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from ..options import DataOptions, Options, count, option
from ..studies.bench import SECTIONS
from .base import command


@dataclass(frozen=True)
class BenchOptions(Options):
    """``qmae bench``'s options."""

    quick: bool = option(False, "tiny sizes: checks that everything runs (CI)")
    json_path: str | None = option(None, "also write the figures as JSON (and the figure beside it)", flag="--json",
                                   metavar="PATH")  # fmt: skip
    device: str = option("cpu", "torch device of the exact engine: cpu or cuda", metavar="DEVICE")
    only: str | None = option(
        None,
        "run one section (estimator: the Aer path next to the exact engine, ~2 min; estimator_epoch: one epoch on "
        "each engine, ~15 min with --data-dir; classifier: ~5 min)",
        choices=SECTIONS,
    )
    scaling_point: int | None = option(
        None, "one scaling point (the bench's own subprocesses)", hidden=True, parse=count
    )
    batch: int = option(64, "the scaling point's batch", hidden=True, parse=count)
    repeat: int = option(3, "the scaling point's repeats", hidden=True, parse=count)


def register(sub: argparse._SubParsersAction) -> None:
    command(
        sub,
        "bench",
        run,
        (BenchOptions, None),
        (DataOptions, ("data_dir",)),
        help="benchmark every training path in one run",
        description="Benchmark every training path in one run: the exact engine, the estimator engine on Aer next to "
        "it, the paper's stack, the exact engine's scaling with n, the classifier.",
    )


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import write_json
    from ..studies import bench

    opts, data = BenchOptions.from_args(args), DataOptions.from_args(args)
    if opts.scaling_point is not None:
        point = bench._scaling_point(opts.scaling_point, opts.batch, opts.repeat, bench._device(opts.device))
        print(json.dumps(point))
        return 0
    result = bench.run(quick=opts.quick, data_dir=data.data_dir, device=opts.device, only=opts.only)
    print(bench.table(result))
    if opts.json_path:
        write_json(opts.json_path, result)
        if opts.only is None:
            bench.plot(result, str(Path(opts.json_path).with_suffix(".png")))
    return 0
