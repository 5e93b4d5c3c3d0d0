"""Studies on Ray (issue 22): each run a Ray task on a local Ray instance, the same numbers as local
processes, failures named per run with the finished runs kept."""

from __future__ import annotations

import json
import os
import sys

import pytest

from qmae_qiskit.cli import main
from qmae_qiskit.studies.experiments import Executor, RunFailed, run_parallel


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (run_parallel joins a running one and leaves it up)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_tasks_return_in_order_and_failures_are_named_per_run(local_ray):
    def _square_or_fail(x: int) -> tuple[int, int]:  # nested: Ray ships it by value (tests/ is not importable)
        if x == 3:
            raise ValueError(f"run {x} cannot train here")
        return x * x, os.getpid()

    results = run_parallel(_square_or_fail, [(0,), (1,), (2,)], Executor(kind="ray"), names=["a", "b", "c"])
    assert [r for r, _ in results] == [0, 1, 4]
    assert all(pid != os.getpid() for _, pid in results)  # each a task in a Ray worker, not the driver
    with pytest.raises(RunFailed, match=r"1 of 4 run\(s\) failed on Ray: d \(ValueError: run 3 cannot train here\)"):
        run_parallel(_square_or_fail, [(0,), (1,), (2,), (3,)], Executor(kind="ray"), names=["a", "b", "c", "d"])


@pytest.mark.parametrize(
    "executor,match",
    [
        (Executor(kind="spark"), "--executor 'spark': choose one of local, ray"),
        (Executor(kind="ray", cpus_per_run=0), "--cpus-per-run must be a positive integer, got 0"),
        (Executor(address="auto"), "--address names a Ray cluster: add --executor ray"),
    ],
)
def test_a_bad_executor_is_named(executor, match):
    with pytest.raises(ValueError, match=match):
        executor.check()


def test_without_ray_the_flag_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra sees
    code = main(["study", "--out", str(tmp_path / "s"), "--quick", "--executor", "ray"])
    assert code == 2
    assert "qmae: error: --executor ray needs Ray: pip install 'qmae-qiskit[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before anything is written


def _numbers(value):
    """A results JSON without what legitimately differs between executors (timings, versions)."""
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items() if k not in ("timings", "versions", "train_s")}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


@pytest.mark.slow
def test_a_quick_study_on_ray_gives_the_numbers_of_local_processes(tmp_path, full_mnist):
    common = ["--quick", "--limit", "200", "--seeds", "2", "--no-progress", "--data-dir", str(full_mnist)]
    assert main(["study", "--out", str(tmp_path / "local"), "--jobs", "2", *common]) == 0
    assert main(["study", "--out", str(tmp_path / "ray"), "--executor", "ray", *common]) == 0
    local = json.loads((tmp_path / "local" / "results.json").read_text())
    ray = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert ray["timings"]["executor"] == "ray" and local["timings"]["jobs"] == 2
    assert _close(_numbers(ray), _numbers(local))
    # a second call (a driver killed and started again) reuses every finished run: the study's own records
    checkpoints = {p: p.stat().st_mtime_ns for p in (tmp_path / "ray" / "runs").glob("*/checkpoint.pt")}
    assert checkpoints
    assert main(["study", "--out", str(tmp_path / "ray"), "--executor", "ray", *common]) == 0
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == checkpoints


def _close(a, b, path="") -> bool:
    """Equal structure and strings; numbers equal to 1e-9 relative (torch threads differ: rounding)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        return all(_close(a[k], b[k], f"{path}.{k}") for k in a)
    if isinstance(a, list):
        assert len(a) == len(b), path
        return all(_close(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b)))
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (path, a, b)
        return True
    assert a == b, (path, a, b)
    return True
