"""``qmae fetch``: a job's counts, scored against the exact simulator."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from ..options import Options, OutputOptions, option
from .base import command


@dataclass(frozen=True)
class FetchOptions(Options):
    """``qmae fetch``'s options."""

    job_id: str = option("", "the provider's job id or the record id", positional=True, metavar="JOB_ID")
    png: str | None = option(None, "where to write reconstructed images (reconstruction jobs)", metavar="PATH")
    accuracy: bool = option(
        False,
        "reconstruction jobs: the ResNet18 accuracy of the composites from counts, the exact composites and the "
        "mean-image fill (the classifier of qmae evaluate; trained once if not cached)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    command(
        sub,
        "fetch",
        run,
        (FetchOptions, None),
        (OutputOptions, ("json",)),
        help="get a job's counts and score them against the exact simulator",
        wraps_errors=True,
    )


def run(args: argparse.Namespace) -> int:
    from ..runtime.retrieval import fetch

    opts = FetchOptions.from_args(args)
    result = fetch(opts.job_id, png=opts.png, accuracy=opts.accuracy)
    if OutputOptions.from_args(args).json:
        print(json.dumps(result.as_json()))
    else:
        print(
            f"job {result.record.job_id} on {result.record.backend} ({result.record.variant}, {result.record.shots} "
            "shots):"
        )
        print_result(result)
    return 0


def _print_features(result: Any) -> None:
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


def print_result(result: Any) -> None:
    """A fetched job's result, one line per image and the means (``qmae fetch``, ``qmae submit``)."""
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
