"""``qmae jobs``: the job records and their status."""

from __future__ import annotations

import argparse
import json

from ..options import OutputOptions
from .base import command


def register(sub: argparse._SubParsersAction) -> None:
    command(sub, "jobs", run, (OutputOptions, ("json",)), help="list job records and their status", wraps_errors=True)


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..runtime.records import jobs_dir
    from ..runtime.retrieval import list_jobs

    records = list_jobs()
    if OutputOptions.from_args(args).json:
        bulky = (
            "exact",
            "masks",
            "exact_embedded",
            "training_masks",
            "training_exact",
            "training_exact_full",
            "bases",
        )
        print(json.dumps([{k: v for k, v in asdict(r).items() if k not in bulky} for r in records]))
        return 0
    if not records:
        print(f"no job records in {jobs_dir()}")
    for r in records:
        print(
            f"{r.record_id}  {r.job_id or '-':<36}  {r.backend:<12} {r.variant:<17} {len(r.indices):>3} x {r.shots:<6}"
            f" {r.status}"
        )
    return 0
