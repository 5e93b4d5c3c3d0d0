"""Experiments over configurations and seeds: train (or reuse) runs, summarize, and decide.

What ``qmae reproduce`` and ``qmae study`` share: a named configuration (:class:`RunSpec`) trained
once per seed into ``<runs>/<name>`` (seed 0) or ``<runs>/<name>-seed<k>``, reused when finished
and resumed when interrupted; summaries over seeds; and verdicts that are stated only where a
paired 95 % interval excludes zero (:func:`verdict`).
"""

from __future__ import annotations

import logging
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
from ..options import Options, count, option

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")


class RunFailed(RuntimeError):
    """Some of a study's runs failed on the executor; the others finished (and are kept)."""


@dataclass(frozen=True)
class ExecutorOptions(Options):
    """Where a study's runs train and score: the one declaration of ``--executor``, ``--jobs``,
    ``--address`` and ``--cpus-per-run`` (every study command's flags and the studies' ``executor=``).

    ``executor="local"``: ``jobs`` spawned processes on this machine; ``"ray"``: one Ray task per
    run, each with ``cpus_per_run`` CPUs (as many at once as the cluster has CPUs for).
    """

    executor: str = option(
        "local",
        "local: --jobs processes here; ray: each run a Ray task (pip install 'qmae-qiskit[ray]')",
        choices=EXECUTORS,
    )
    jobs: int = option(
        1,
        "runs trained (and scored) at once, each in its own process with cores/jobs threads; small circuits run "
        "faster as several single-threaded processes than as one",
        metavar="N",
        parse=count,
    )
    address: str | None = option(
        None,
        "with --executor ray: the cluster to join (auto, ray://head:10001; default: a local Ray instance)",
        metavar="ADDR",
    )
    cpus_per_run: int = option(1, "with --executor ray: CPUs (and torch threads) per run", metavar="N", parse=count)

    @property
    def kind(self) -> str:
        """``"local"`` or ``"ray"`` (the older name of :attr:`executor`)."""
        return self.executor

    def check(self) -> None:
        """Raises ValueError naming the flag: an unknown kind, a non-positive count, an address
        without Ray, or Ray not installed."""
        if self.executor not in EXECUTORS:
            raise ValueError(f"--executor {self.executor!r}: choose one of {', '.join(EXECUTORS)}")
        for name, value in (("--jobs", self.jobs), ("--cpus-per-run", self.cpus_per_run)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.executor != "ray":
            if self.address is not None:
                raise ValueError("--address names a Ray cluster: add --executor ray")
            return
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError("--executor ray needs Ray: pip install 'qmae-qiskit[ray]'") from None


def _unchecked(kind: str, jobs: int, address: str | None, cpus_per_run: int) -> ExecutorOptions:
    """An :class:`ExecutorOptions` whose values :meth:`ExecutorOptions.check` judges (with the
    messages the studies have always given), not the declarations' parsers."""
    made = object.__new__(ExecutorOptions)
    for name, value in (("executor", kind), ("jobs", jobs), ("address", address), ("cpus_per_run", cpus_per_run)):
        object.__setattr__(made, name, value)
    return made


class Executor(ExecutorOptions):
    """:class:`ExecutorOptions` under its older name and keywords (``kind=`` for ``executor=``);
    values are checked by :meth:`ExecutorOptions.check`, not here."""

    def __init__(self, kind: str = "local", jobs: int = 1, address: str | None = None, cpus_per_run: int = 1) -> None:
        for name, value in (("executor", kind), ("jobs", jobs), ("address", address), ("cpus_per_run", cpus_per_run)):
            object.__setattr__(self, name, value)


def executor_options(
    executor: ExecutorOptions | str | None,
    *,
    jobs: int | None = None,
    address: str | None = None,
    cpus_per_run: int | None = None,
) -> ExecutorOptions:
    """A study's ``executor=``: an :class:`ExecutorOptions`, or (the older keywords) a kind with
    ``jobs``, ``address`` and ``cpus_per_run`` beside it, checked.

    Raises:
        ValueError: a bad executor, count or address, named as its flag; both forms at once.
    """
    if isinstance(executor, ExecutorOptions):
        if any(v is not None for v in (jobs, address, cpus_per_run)):
            raise ValueError("give jobs, address and cpus_per_run inside executor=ExecutorOptions(...), not beside it")
        runner = executor
    else:
        runner = _unchecked(
            executor or "local", 1 if jobs is None else jobs, address, 1 if cpus_per_run is None else cpus_per_run
        )
    runner.check()
    return runner


__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorOptions",
    "executor_options",
    "RunFailed",
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


def run_parallel(
    fn: Any, calls: list[tuple[Any, ...]], jobs: int | ExecutorOptions, *, names: Sequence[str] | None = None
) -> list[Any]:
    """``[fn(*c) for c in calls]``, in order; locally with ``jobs > 1`` in that many spawned
    processes, each with ``cores // jobs`` torch threads; or as Ray tasks (an :class:`Executor` of
    kind ``"ray"``).

    Raises:
        RunFailed: on Ray, the runs that failed (named by ``names``), after the others finished.
    """
    executor = jobs if isinstance(jobs, ExecutorOptions) else _unchecked("local", jobs, None, 1)
    if executor.kind == "ray":
        return _run_ray(fn, calls, executor, names or [str(i) for i in range(len(calls))])
    jobs = executor.jobs
    if jobs == 1 or len(calls) < 2:
        return [fn(*c) for c in calls]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
        return list(pool.map(fn, *zip(*calls)))


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _in_ray_task(fn: Any, threads: int, *args: Any) -> Any:
    _init_worker(threads)
    return fn(*args)


def _run_ray(fn: Any, calls: list[tuple[Any, ...]], executor: ExecutorOptions, names: Sequence[str]) -> list[Any]:
    """Each call a Ray task with ``cpus_per_run`` CPUs; progress and failures logged per run. A
    local Ray instance is started (and stopped) unless one is running or ``address`` names one."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=executor.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        task = ray.remote(num_cpus=executor.cpus_per_run, max_retries=0)(_in_ray_task)
        refs = [task.remote(fn, executor.cpus_per_run, *call) for call in calls]
        where = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        failed: list[str] = []
        pending = list(refs)
        log.warning("%d run(s) sent to Ray (%s CPUs on the cluster)", len(refs), ray.cluster_resources().get("CPU"))
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            i = where[done[0]]
            try:
                results[i] = ray.get(done[0])
                log.warning("run %s finished (%d of %d)", names[i], len(refs) - len(pending), len(refs))
            except Exception as exc:  # the task's own error, wrapped by Ray: its first line names it
                cause = getattr(exc, "cause", None) or exc
                failed.append(f"{names[i]} ({type(cause).__name__}: {str(cause).strip().splitlines()[0][:200]})")
                log.warning("run %s failed: %s", names[i], failed[-1])
    finally:
        if started:
            ray.shutdown()
    if failed:
        raise RunFailed(
            f"{len(failed)} of {len(calls)} run(s) failed on Ray: {'; '.join(failed)}; the others are kept: run the "
            "same command again to retry only these"
        )
    return results


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
