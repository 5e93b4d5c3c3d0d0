"""Running a job's PUBs and collecting its counts: the executor Sampler in a Batch.

Shared by :mod:`.submission` (a new job) and :mod:`.retrieval` (a local job run again from its
record, or a remote one waited for), below both: a job's data flows one way, records ->
execution -> submission / retrieval -> scoring.

Sampler: ``qiskit_ibm_runtime.executor_sampler.Sampler`` (the successor of ``SamplerV2`` since
qiskit-ibm-runtime 0.50); it runs in a ``Batch`` (Open Plan friendly) and in local testing mode.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import numpy as np
from qiskit import QuantumCircuit

from ..model import QMAE
from ..model_circuits import parameter_values, template
from .backends import get_backend
from .mitigation import ReadoutCalibration, calibration_plan, fold_two_qubit_gates, measured_qubits
from .options import SubmitOptions
from .records import JobError, JobRecord, calibration_path, record_images, save_counts, save_record
from .transpile import isa_circuit

__all__ = ["run_pubs", "complete", "job_status", "first_line", "max_shots"]

log = logging.getLogger(__name__)


def _bindings(record: JobRecord, model: QMAE, isa: QuantumCircuit) -> np.ndarray:
    """``(bindings, parameters)`` values in the ISA circuit's parameter order: the test images,
    then (learned mitigation) the training circuits, which ride in the same PUB."""
    values = parameter_values(model, *record_images(record, model), record.variant, bases=record.bases or ())
    if record.training_indices:
        training = parameter_values(model, *record_images(record, model, training=True), record.variant)
        values = np.vstack([values, training])
    logical = [p.name for p in template(model, record.variant).circuit.parameters]
    column = {name: k for k, name in enumerate(logical)}
    return values[:, [column[p.name] for p in isa.parameters]]  # by name: the ISA circuit may reorder them


def _sampler(batch: Any, record: JobRecord, *, calibration: bool = False) -> Any:
    """The executor Sampler of the record's jobs; ``calibration``: plain (no twirling or
    decoupling: mthree calibrates the readout as it is)."""
    from qiskit_ibm_runtime.executor_sampler import Sampler

    sampler = Sampler(mode=batch)
    sampler.options.default_shots = record.shots
    suppress = not calibration
    sampler.options.dynamical_decoupling.enable = suppress and bool(record.options.dynamical_decoupling)
    sampler.options.twirling.enable_gates = suppress and bool(record.options.twirling)
    sampler.options.twirling.enable_measure = suppress and bool(record.options.twirling)
    # the tag lets fetch find a job whose id never came back
    sampler.options.environment.job_tags = [f"qmae:{record.record_id}" + (":calibration" if calibration else "")]
    if record.local and record.options.seed is not None:
        sampler.options.simulator.seed_simulator = int(record.options.seed)
    return sampler


def _simulator(backend: Any, record: JobRecord) -> Any:
    """The backend a local job runs on: the fake device itself (Aer picks its method), or Aer with
    the device's noise and the record's ``simulator_method``."""
    method = record.options.simulator_method
    if not record.local or method == SubmitOptions.simulator_method:  # the default: the backend as it is
        return backend
    from qiskit_aer import AerSimulator

    if isinstance(backend, AerSimulator):
        simulator = copy.deepcopy(backend)
        simulator.set_options(method=method)
        return simulator
    return AerSimulator.from_backend(backend, method=method)


def run_pubs(record: JobRecord, model: QMAE, backend: Any) -> tuple[Any, Any]:
    """Submit the record's PUBs (one per ZNE scale) and, with readout mitigation, mthree's
    calibration circuits as a second job in the same Batch. Neither is waited for.

    Returns:
        ``(job, calibration job or None)``; ``record.calibration`` holds the calibration's plan.
    """
    from qiskit_ibm_runtime import Batch

    isa = isa_circuit(model, backend, record.variant, optimization_level=record.options.optimization_level)
    values = _bindings(record, model, isa)
    log.info(
        "submitting %d binding(s) x %d scale(s) of %s to %s",
        len(values),
        len(record.scales),
        record.variant,
        record.backend,
    )
    pubs = [(fold_two_qubit_gates(isa, scale), values) for scale in record.scales]
    with Batch(backend=_simulator(backend, record)) as batch:
        job = _sampler(batch, record).run(pubs)
        calibration_job = None
        if record.options.readout_mitigation and not calibration_path(record).is_file():
            plan = calibration_plan(backend, measured_qubits(isa), shots=record.options.calibration_shots)
            record.calibration = plan.as_record()
            log.info(
                "submitting mthree's %s calibration: %d circuits on qubits %s",
                plan.method,
                len(plan.circuits),
                plan.qubits,
            )
            calibration_job = _sampler(batch, record, calibration=True).run(
                [(c, None, n) for c, n in zip(plan.circuits, plan.circuit_shots)]
            )
        return job, calibration_job


def job_status(job: Any) -> str:
    """The provider's status of ``job`` in capitals (``"DONE"``, ``"CANCELLED"``, ...), ``""`` if unknown."""
    try:
        status = job.status()
    except Exception:
        return ""
    return str(getattr(status, "name", status)).upper()


def _wait(record: JobRecord, job: Any, what: str) -> Any:
    log.info("waiting for %s %s on %s (status %s)", what, job.job_id(), record.backend, job_status(job) or "unknown")
    try:
        if record.local:
            _tick_while_running(record, job, what)
        return job.result()
    except Exception as exc:  # a failed or cancelled job: the client raises its own types; its status says which
        status = "cancelled" if "CANCEL" in job_status(job) else "failed"
        record.status, record.error = status, f"{what} {job.job_id()}: {type(exc).__name__}: {first_line(exc)}"
        save_record(record)
        raise JobError(f"job {record.job_id} {status}: {record.error}") from None


FINISHED = ("DONE", "ERROR", "CANCELLED", "FAILED")


def _tick_while_running(record: JobRecord, job: Any, what: str) -> None:
    """A local simulation runs in this process's threads and says nothing until it ends: show the
    time it has taken (tqdm, on a terminal) so a deep circuit is not taken for a hang."""
    from tqdm import tqdm

    label = f"simulating {what} ({record.bindings} circuit(s) x {record.shots} shots on {record.backend})"
    with tqdm(desc=label, bar_format="{desc}: {elapsed}", disable=None, leave=False) as bar:
        while _running(job):
            time.sleep(0.5)
            bar.refresh()


def _running(job: Any) -> bool:
    try:
        return not job.in_final_state()
    except Exception:  # no such method: its status, and an unknown one ends the ticking
        return job_status(job) not in (*FINISHED, "")


def complete(record: JobRecord, job: Any, calibration_job: Any = None) -> None:
    """Wait for ``job`` (and its calibration job), save their counts, mark the record done.

    Raises:
        JobError: a job failed or was cancelled (recorded).
    """
    result = _wait(record, job, "job")
    by_scale = []
    for pub_result in result:
        data = pub_result.data
        bits = data["c"] if "c" in data else next(iter(data.values()))
        by_scale.append([bits.get_counts(i) for i in range(record.bindings)])
    calibration = None
    if calibration_job is not None:
        calibration = [r.data.c.get_counts() for r in _wait(record, calibration_job, "calibration job")]
    save_counts(record, by_scale, calibration)
    if (
        calibration is not None and record.calibration is not None
    ):  # mthree's own code turns the counts into the calibration, saved beside the record
        ReadoutCalibration.from_counts(
            get_backend(record.backend), record.calibration, calibration, calibration_path(record)
        )
    record.status = "done"
    save_record(record)
    log.info("job %s done", record.job_id)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def max_shots(backend: Any) -> int:
    """The most shots per circuit ``backend`` takes: its own limit where it reports one, else 10^7
    (Aer's counts fit, and nobody waits for more)."""
    for getter in (lambda: backend.max_shots, lambda: backend.configuration().max_shots):
        try:
            value = getter()
        except Exception:
            continue
        if isinstance(value, int) and value > 0:
            return value
    return 10_000_000
