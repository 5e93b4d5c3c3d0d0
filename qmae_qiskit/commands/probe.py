"""``qmae probe``: linear probes of a run's latent features, exact or measured on a device."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from ..options import DataOptions, Options, OutputOptions, count, option
from .base import RunOptions, command


@dataclass(frozen=True)
class ProbeOptions(Options):
    """What ``qmae probe`` fits and scores besides the run and its data."""

    train_limit: int | None = option(
        None, "fit on the first N training images (default: all)", metavar="N", parse=count
    )
    kind: str = option("pauli2", "observables", choices=("pauli2", "pauli1"))
    job: str | None = option(
        None,
        "score the probe on the features a device measured instead (a qmae submit RUN_DIR --features job; its kind "
        "and images), next to the exact features of the same images",
        metavar="JOB_ID",
    )


def register(sub: argparse._SubParsersAction) -> None:
    command(
        sub,
        "probe",
        run,
        (RunOptions, None),
        (DataOptions, ("data_dir", "limit")),
        (ProbeOptions, None),
        (OutputOptions, ("json",)),
        help="linear probes of the latent features (Pauli expectation values) and the baselines",
        description="Fit a logistic regression (C by 3-fold cross-validation on the training split) on frozen "
        "features of clean and masked training images: the run's latent Pauli expectation values, an untrained "
        "encoder's, the input state's, the pixels and their PCA; score each once on the test split.",
    )


def run(args: argparse.Namespace) -> int:
    from ..probe import probe

    run_dir = RunOptions.from_args(args).run_dir
    data, opts, output = DataOptions.from_args(args), ProbeOptions.from_args(args), OutputOptions.from_args(args)
    if opts.job:
        return _device(run_dir, data, opts, output)
    result = probe(run_dir, data_dir=data.data_dir, limit=data.limit, train_limit=opts.train_limit, kind=opts.kind)
    if output.json:
        print(json.dumps(result.as_json()))
        return 0
    print(f"{result.run_dir}: {result.train_images} training, {result.test_images} test images, {result.kind}")
    print(result.table())
    for name, c in result.comparisons.items():
        print(f"  {name}: {100 * c['mean']:+.2f} pp [{100 * c['low']:+.2f}, {100 * c['high']:+.2f}]")
    return 0


def _device(run_dir: str, data: DataOptions, opts: ProbeOptions, output: OutputOptions) -> int:
    """The probe scored on a --features job's measured features."""
    from ..runtime import load_record, probe_job

    assert opts.job is not None
    record = load_record(opts.job)
    if Path(record.run_dir).resolve() != Path(run_dir).resolve():
        raise ValueError(f"job {opts.job} measured {record.run_dir}, not {run_dir}: name that run")
    d = probe_job(opts.job, data_dir=data.data_dir, train_limit=opts.train_limit)
    if output.json:
        print(json.dumps(d.as_json()))
        return 0

    def cell(p: float, i: tuple[float, float]) -> str:
        return f"{100 * p:.2f} % [{100 * i[0]:.2f}, {100 * i[1]:.2f}]"

    def diff(c: dict[str, float]) -> str:
        return f"{100 * c['mean']:+.2f} pp [{100 * c['low']:+.2f}, {100 * c['high']:+.2f}]"

    which = "masked" if d.masked else "clean"
    print(
        f"{run_dir}: probe fitted on {d.train_images} training images' exact {d.kind} features, scored on "
        f"the {d.images} {which} test images of job {d.record_id} ({d.backend}, {d.shots_per_image} shots per "
        f"image, {d.total_shots} in all)"
    )
    print(f"  exact features:                      {cell(d.exact_accuracy, d.exact_interval)}")
    print(
        f"  device features:                     {cell(d.device_accuracy, d.device_interval)}  "
        f"minus exact {diff(d.device_minus_exact)}"
    )
    print(
        f"  device features, own standardization: {cell(d.restandardized_accuracy, d.restandardized_interval)}  "
        f"minus exact {diff(d.restandardized_minus_exact)}"
    )
    print(
        f"  features: mean |device - exact| {d.mean_abs_error:.4f}, slope {d.slope:.3f}, "
        f"correlation {d.correlation:.3f}"
    )
    return 0
