"""Experiments over configurations and seeds: train (or reuse) runs, summarize, and decide.

What ``qmae reproduce`` and ``qmae study`` share: a named configuration (:class:`RunSpec`) trained
once per seed into ``<runs>/<name>`` (seed 0) or ``<runs>/<name>-seed<k>``, reused when finished
and resumed when interrupted; summaries over seeds; and verdicts that are stated only where a
paired 95 % interval excludes zero (:func:`verdict`).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import checkpoint as ckpt
from ..metrics import Interval, paired_interval

__all__ = [
    "RunSpec",
    "run_dir",
    "finished",
    "train_or_reuse",
    "run_parallel",
    "over_seeds",
    "Verdict",
    "verdict",
    "compare",
]


@dataclass(frozen=True)
class RunSpec:
    """A named training configuration.

    Attributes:
        name: the run's directory name (seed 0; other seeds add ``-seed<k>``).
        options: :class:`~qmae_qiskit.TrainConfig` options beyond the experiment's common ones.
        label: how tables name it.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""


def run_dir(runs: str | Path, spec: RunSpec, seed: int) -> Path:
    """``runs/name`` for seed 0 (the runs committed before seeds existed), ``runs/name-seed<k>`` else."""
    return Path(runs) / (spec.name if seed == 0 else f"{spec.name}-seed{seed}")


def finished(path: Path) -> bool:
    """Whether ``path`` holds a run that trained all its epochs."""
    try:
        state = ckpt.load_checkpoint(path)
        epochs = ckpt.load_config(path)["options"]["epochs"]
    except Exception:
        return False
    return state.get("epoch", 0) >= epochs


def train_or_reuse(
    spec: RunSpec, runs: str | Path, seed: int, *, common: Mapping[str, Any], progress: bool = False
) -> tuple[Path, float, str]:
    """The run of ``spec`` for ``seed``: reused if finished, resumed if interrupted, else trained.

    Returns:
        ``(run directory, seconds spent now, "reused" | "resumed" | "trained")``.
    """
    from ..training import resume, train

    path = run_dir(runs, spec, seed)
    start = time.perf_counter()
    if finished(path):
        return path, 0.0, "reused"
    if (path / ckpt.CONFIG).exists():
        resume(path, progress=progress)
        return path, time.perf_counter() - start, "resumed"
    train(out=path, progress=progress, **{**common, **spec.options, "seed": seed})
    return path, time.perf_counter() - start, "trained"


def run_parallel(fn: Any, calls: list[tuple[Any, ...]], jobs: int) -> list[Any]:
    """``[fn(*c) for c in calls]``, in order; with ``jobs > 1`` in that many spawned processes, each
    with ``cores // jobs`` torch threads."""
    if jobs == 1 or len(calls) < 2:
        return [fn(*c) for c in calls]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
        return list(pool.map(fn, *zip(*calls)))


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def over_seeds(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per key: ``mean`` over the seeds' rows and their spread, ``std`` (over seeds; 0 for one seed)
    and, for one seed, the images' ``stderr`` instead."""
    out = {}
    for key in keys:
        values = [r[key] for r in rows if r.get(key) is not None]
        if not values:
            continue
        entry = {"mean": float(np.mean(values)), "seeds": len(values)}
        if len(values) > 1:
            entry["std"] = float(np.std(values, ddof=1))
        elif rows[0].get(f"{key}_stderr") is not None:
            entry["stderr"] = float(rows[0][f"{key}_stderr"])
        out[key] = entry
    return out


@dataclass(frozen=True)
class Verdict:
    """A claim, the paired interval of the difference it rests on, and what can be said."""

    claim: str
    interval: Interval
    unit: str = ""
    paired_over: str = "seeds"

    @property
    def decided(self) -> bool:
        return self.interval.excludes_zero

    @property
    def holds(self) -> bool | None:
        """True / False where the interval excludes 0, ``None`` where it is undecided."""
        return (self.interval.low > 0) if self.decided else None

    def sentence(self) -> str:
        i, u = self.interval, self.unit
        numbers = (
            f"difference {i.mean:+.3f}{u}, 95 % interval [{i.low:+.3f}, {i.high:+.3f}]{u}, paired over {i.samples} "
            f"{self.paired_over}"
        )
        if self.holds is None:
            return f"{self.claim}: **undecided** ({numbers}; the interval includes 0)"
        return f"{self.claim}: **{'yes' if self.holds else 'no: the reverse holds'}** ({numbers})"


def verdict(
    claim: str,
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    unit: str = "",
    paired_over: str = "seeds",
) -> Verdict:
    """The verdict on "a > b" from paired samples (per seed, or per image for a single seed)."""
    return Verdict(claim, paired_interval(a, b), unit, paired_over)


def compare(
    claim: str,
    key: str,
    a_rows: Sequence[Mapping[str, Any]],
    b_rows: Sequence[Mapping[str, Any]],
    *,
    unit: str = "",
    scale: float = 1.0,
) -> Verdict:
    """``claim`` ("a beats b on key") decided from per-seed means when there are several seeds, else
    from the per-image values of the single seed (``row["per_image"][key]``, ``correct`` for accuracy)."""
    if len(a_rows) > 1 and len(a_rows) == len(b_rows):
        return verdict(claim, [scale * r[key] for r in a_rows], [scale * r[key] for r in b_rows], unit=unit)
    image_key = "correct" if key == "accuracy" else key
    a = scale * np.asarray(a_rows[0]["per_image"][image_key], dtype=float)
    b = scale * np.asarray(b_rows[0]["per_image"][image_key], dtype=float)
    return verdict(claim, a, b, unit=unit, paired_over="images (one seed: training's seed-to-seed spread not included)")
