"""Where the job is submitted: sampled inference jobs on IBM Quantum (or its local testing mode).

``submit`` writes a job record (:mod:`.records`) atomically before it sends anything, and again
with the provider's job id before it waits, so an interrupted submit loses nothing: ``fetch``
(:mod:`.retrieval`) completes it later. All images are parameter bindings of one ISA circuit
(:mod:`.transpile`): one PUB per ZNE noise scale.

Sampler: ``qiskit_ibm_runtime.executor_sampler.Sampler`` (the successor of ``SamplerV2`` since
qiskit-ibm-runtime 0.50); it runs in a ``Batch`` (Open Plan friendly) and in local testing mode.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from qiskit import QuantumCircuit

from ..checkpoint import CHECKPOINT
from ..circuits.fidelity import POSTSELECTED_VARIANTS, RECONSTRUCTION, RECONSTRUCTION_POSTSELECT
from ..masking import mask_patches
from ..model import QMAE, load_model
from ..runs import data_for_run, saved_evaluation_masks
from .backends import get_backend, is_local
from .mitigation import (
    EXTRAPOLATIONS,
    PROFILES,
    ReadoutCalibration,
    calibration_plan,
    fold_two_qubit_gates,
    measured_qubits,
    parse_scales,
)
from .records import JobError, JobRecord, calibration_path, record_images, save_counts, save_record
from .transpile import isa_circuit

__all__ = ["submit", "run_pubs", "complete", "model_for", "checkpoint_sha256", "job_status", "max_shots"]

log = logging.getLogger(__name__)


def checkpoint_sha256(run_dir: str | os.PathLike) -> str:
    """SHA-256 of a run's checkpoint: a record names the exact weights it ran."""
    digest = hashlib.sha256()
    with open(Path(run_dir) / CHECKPOINT, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_for(record: JobRecord) -> QMAE:
    """The record's model, with the embedding that ran.

    Raises:
        JobError: the run's checkpoint is not the one the job ran (re-trained, or replaced).
    """
    found = checkpoint_sha256(record.run_dir)
    if found != record.checkpoint_sha256:
        raise JobError(
            f"the checkpoint of {record.run_dir} changed since job {record.job_id or record.record_id} was submitted "
            f"(sha256 {record.checkpoint_sha256[:12]}... recorded, {found[:12]}... now); restore the run it ran, or "
            "submit again"
        )
    return load_model(record.run_dir).set_embedding(record.options.get("embedding_layers"))


def _bindings(record: JobRecord, model: QMAE, isa: QuantumCircuit) -> np.ndarray:
    """``(bindings, parameters)`` values in the ISA circuit's parameter order: the test images,
    then (learned mitigation) the training circuits, which ride in the same PUB."""
    values = model.parameter_values(*record_images(record, model), record.variant)
    if record.training_indices:
        training = model.parameter_values(*record_images(record, model, training=True), record.variant)
        values = np.vstack([values, training])
    logical = [p.name for p in model.template(record.variant).circuit.parameters]
    column = {name: k for k, name in enumerate(logical)}
    return values[:, [column[p.name] for p in isa.parameters]]  # by name: the ISA circuit may reorder them


def _sampler(batch: Any, record: JobRecord, *, calibration: bool = False) -> Any:
    """The executor Sampler of the record's jobs; ``calibration``: plain (no twirling or
    decoupling: mthree calibrates the readout as it is)."""
    from qiskit_ibm_runtime.executor_sampler import Sampler

    sampler = Sampler(mode=batch)
    sampler.options.default_shots = record.shots
    suppress = not calibration
    sampler.options.dynamical_decoupling.enable = suppress and bool(record.options.get("dynamical_decoupling"))
    sampler.options.twirling.enable_gates = suppress and bool(record.options.get("twirling"))
    sampler.options.twirling.enable_measure = suppress and bool(record.options.get("twirling"))
    # the tag lets fetch find a job whose id never came back
    sampler.options.environment.job_tags = [f"qmae:{record.record_id}" + (":calibration" if calibration else "")]
    if record.local and record.options.get("seed") is not None:
        sampler.options.simulator.seed_simulator = int(record.options["seed"])
    return sampler


def run_pubs(record: JobRecord, model: QMAE, backend: Any) -> tuple[Any, Any]:
    """Submit the record's PUBs (one per ZNE scale) and, with readout mitigation, mthree's
    calibration circuits as a second job in the same Batch. Neither is waited for.

    Returns:
        ``(job, calibration job or None)``; ``record.calibration`` holds the calibration's plan.
    """
    from qiskit_ibm_runtime import Batch

    isa = isa_circuit(model, backend, record.variant, optimization_level=record.options.get("optimization_level", 3))
    values = _bindings(record, model, isa)
    log.info(
        "submitting %d binding(s) x %d scale(s) of %s to %s",
        len(values),
        len(record.scales),
        record.variant,
        record.backend,
    )
    pubs = [(fold_two_qubit_gates(isa, scale), values) for scale in record.scales]
    with Batch(backend=backend) as batch:
        job = _sampler(batch, record).run(pubs)
        calibration_job = None
        if record.options.get("readout_mitigation") and not calibration_path(record).is_file():
            plan = calibration_plan(backend, measured_qubits(isa), shots=record.options.get("calibration_shots"))
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
        return job.result()
    except Exception as exc:  # a failed or cancelled job: the client raises its own types; its status says which
        status = "cancelled" if "CANCEL" in job_status(job) else "failed"
        record.status, record.error = status, f"{what} {job.job_id()}: {type(exc).__name__}: {_first_line(exc)}"
        save_record(record)
        raise JobError(f"job {record.job_id} {status}: {record.error}") from None


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
    if calibration is not None:  # mthree's own code turns the counts into the calibration, saved beside the record
        ReadoutCalibration.from_counts(
            get_backend(record.backend), record.calibration, calibration, calibration_path(record)
        )
    record.status = "done"
    save_record(record)
    log.info("job %s done", record.job_id)


def submit(
    run_dir: str | os.PathLike,
    *,
    backend: str,
    images: int = 4,
    shots: int = 4096,
    variant: str | None = None,
    reconstruct: bool = False,
    dynamical_decoupling: bool = False,
    twirling: bool | None = None,
    optimization_level: int = 3,
    seed: int | None = 0,
    data_dir: str | None = None,
    embedding_layers: int | None = None,
    readout_mitigation: bool | None = None,
    calibration_shots: int | None = None,
    zne: str | Sequence[int] | None = None,
    extrapolation: str = "exponential",
    cdr: int | None = None,
    cdr_target: str | None = None,
    profile: str | None = None,
    wait: bool = True,
) -> JobRecord:
    """Submit inference on the first ``images`` test images of a trained run.

    The record is written before the job is submitted and again, with the job id, before waiting
    for the result. With ``wait`` the counts are fetched and saved too.

    Args:
        run_dir: a trained run.
        backend: ``aer``, a fake device (``fake_fez``) or a real one (``ibm_fez``).
        images, shots: the first ``images`` test images, ``shots`` each.
        variant: fidelity circuit; the post-selected variants (``"postselect"``,
            ``"postselect_flag"``) score the kept shots. Default: ``"postselect"`` for a run
            trained with ``objective="postselect"``, else the profile's (``"compute_uncompute"``
            for ``"best"``), else ``"reset"``.
        reconstruct: sample the reconstruction circuit instead (post-selected for a run trained
            with ``objective="postselect"``).
        dynamical_decoupling, twirling: runtime Sampler options.
        optimization_level, seed: transpiler level; simulator seed in local mode.
        data_dir: MNIST directory (default: the run's source).
        embedding_layers: the approximate ladder embedding with this many CNOT layers
            (default: the run's own, which is the exact embedding unless it was fine-tuned with one).
        readout_mitigation: correct the counts with an mthree calibration: its circuits run as a
            second job in the same Batch, with mthree's ``"balanced"`` method (what it uses on
            hardware, here in local testing mode too).
        calibration_shots: shots of that calibration (default: mthree's own, ``min(max_shots, 10000)``).
        zne: noise scales for zero-noise extrapolation by gate folding, e.g. ``"1,3"``.
        extrapolation: ``"exponential"`` or ``"linear"``.
        cdr: learned mitigation in the manner of Clifford data regression (Czarnik et al., 2021):
            ``cdr`` training circuits, the same circuit bound to training-split images, run in
            the same PUB; their exact values (classically simulable at this size, which is what
            CDR's near-Clifford circuits buy at scale) fit a linear map from the (otherwise
            mitigated) hardware estimate to the ideal one, applied to the test images.
        cdr_target: regress onto the exact values of the circuits that ran (``"ran"``, standard
            CDR) or onto their full-embedding values (``"full"``: the map then also absorbs the
            approximate embedding's average bias).
        profile: a named configuration (:data:`~.mitigation.PROFILES`; ``"best"`` is the measured
            best on FakeFez); explicit arguments override it.
        wait: wait for the result and save the counts.

    Returns:
        The job record (``status`` ``"done"`` after waiting, else ``"submitted"``).

    Raises:
        ValueError: bad arguments, or a circuit wider than the backend.
        BackendError: unknown backend, no account, no network.
        JobError: the job failed or was cancelled (recorded).
    """
    profile_variant = None
    if profile is not None:
        if profile not in PROFILES:
            raise ValueError(f"unknown --profile {profile!r}; choose one of {', '.join(PROFILES)}")
        chosen = PROFILES[profile]
        profile_variant = chosen["variant"]
        embedding_layers = chosen["embedding_layers"] if embedding_layers is None else embedding_layers
        readout_mitigation = chosen["readout_mitigation"] if readout_mitigation is None else readout_mitigation
        zne = chosen["zne"] if zne is None else zne
        twirling = chosen["twirling"] if twirling is None else twirling
        cdr = chosen.get("cdr") if cdr is None else cdr
        cdr_target = chosen.get("cdr_target") if cdr_target is None else cdr_target
    for name, value in (("images", images), ("shots", shots)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"--images and --shots must be positive integers, got --{name} {value!r}")
    if optimization_level not in (0, 1, 2, 3):
        raise ValueError(f"--optimization-level must be 0..3, got {optimization_level}")
    scales = parse_scales(zne) if zne is not None else None
    if extrapolation not in EXTRAPOLATIONS:
        raise ValueError(f"--extrapolation must be one of {', '.join(EXTRAPOLATIONS)}, got {extrapolation!r}")
    if reconstruct and (scales or cdr):
        raise ValueError("--zne and --cdr apply to fidelity circuits; drop them with --reconstruct")
    cdr_target = "ran" if cdr_target is None else cdr_target
    if cdr_target not in ("ran", "full"):
        raise ValueError(f"--cdr-target must be 'ran' or 'full', got {cdr_target!r}")
    if calibration_shots is not None and (not isinstance(calibration_shots, int) or calibration_shots < 1):
        raise ValueError(f"--calibration-shots must be a positive integer, got {calibration_shots!r}")
    if cdr is not None and cdr < 3:
        raise ValueError(f"--cdr needs at least 3 training circuits to fit a line, got {cdr}")
    run_dir = Path(run_dir).resolve()
    model = load_model(run_dir)
    if variant is None:  # a post-selected run is scored as it was trained: on the shots it keeps
        variant = "postselect" if model.objective == "postselect" else (profile_variant if profile else "reset")
    if embedding_layers is None:
        embedding_layers = model.embedding_layers  # a run fine-tuned with the ladder runs it
    model.set_embedding(embedding_layers)  # validates it
    model.set_embedding(None)
    the_backend = get_backend(backend)
    if reconstruct:  # a post-selected model is read off its kept shots
        variant = RECONSTRUCTION_POSTSELECT if model.objective == "postselect" else RECONSTRUCTION
    postselected = variant in POSTSELECTED_VARIANTS or variant == RECONSTRUCTION_POSTSELECT
    # everything that can be checked here is checked before a record exists
    available = len(data_for_run(run_dir, split="test", data_dir=data_dir).labels)
    if images > available:
        raise ValueError(f"--images {images} but the test split has {available} images; ask for at most {available}")
    limit = max_shots(the_backend)
    if shots > limit:
        raise ValueError(f"--shots {shots} is more than {the_backend.name} runs per circuit ({limit}); ask for fewer")
    with model_embedding(model, embedding_layers):
        isa_circuit(model, the_backend, variant, optimization_level=optimization_level)  # transpiles; checks the width
    masks = saved_evaluation_masks(run_dir, model, images)
    record = JobRecord(
        record_id=time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8],
        backend=backend,
        local=is_local(the_backend),
        variant=variant,
        run_dir=str(run_dir),
        checkpoint_sha256=checkpoint_sha256(run_dir),
        split="test",
        indices=list(range(images)),
        masks=mask_patches(masks, model.patch_size).tolist(),
        shots=shots,
        num_qubits=model.num_qubits,
        data_dir=data_dir,
        options={
            "dynamical_decoupling": dynamical_decoupling,
            "twirling": bool(twirling),
            "optimization_level": optimization_level,
            "seed": seed,
            "embedding_layers": embedding_layers,
            "readout_mitigation": bool(readout_mitigation),
            "calibration_shots": calibration_shots,
            "zne": list(scales) if scales else None,
            "extrapolation": extrapolation,
            "cdr": cdr,
            "cdr_target": cdr_target,
            "profile": profile,
        },
        exact=[],
    )
    imgs, msks = record_images(record, model)
    if len(imgs) < images:
        raise ValueError(f"--images {images} but the test split has {len(imgs)}")

    def exact_values() -> list[Any]:
        with torch.no_grad():
            if reconstruct:
                return model.reconstruct(imgs, msks, postselect=postselected).square().flatten(1).tolist()
            return model.fidelity(imgs, msks, postselect=postselected).tolist()

    record.exact = exact_values()  # the full embedding: what the user wants to know
    if postselected:
        with torch.no_grad():
            record.exact_keep = model.keep_probability(imgs, msks).tolist()
    if embedding_layers is not None:
        model.set_embedding(embedding_layers)
        record.exact_embedded = exact_values()
    if cdr:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
        train_size = len(data_for_run(record.run_dir, split="train", data_dir=record.data_dir).labels)
        record.training_indices = torch.randperm(train_size, generator=generator)[:cdr].tolist()
        record.training_masks = mask_patches(model.random_mask(cdr, generator=generator), model.patch_size).tolist()
        with torch.no_grad():
            training = record_images(record, model, training=True)
            # of the circuit that runs, then under the full embedding
            record.training_exact = model.fidelity(*training, postselect=postselected).tolist()
            record.training_exact_full = model.set_embedding(None).fidelity(*training, postselect=postselected).tolist()
            model.set_embedding(embedding_layers)
    save_record(record)  # before anything can fail remotely: `fetch` can always complete it
    try:
        job, calibration_job = run_pubs(record, model, the_backend)
    except Exception as exc:  # refused by the service or the simulator: the record says so, not "submitting"
        record.status, record.error = "failed", f"{type(exc).__name__}: {_first_line(exc)}"
        save_record(record)
        raise JobError(f"submitting job {record.record_id} failed: {record.error}") from None
    record.job_id, record.status = job.job_id(), "submitted"
    record.calibration_job_id = calibration_job.job_id() if calibration_job is not None else None
    save_record(record)
    if wait:
        complete(record, job, calibration_job)
    return record


def _first_line(exc: BaseException) -> str:
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


@contextlib.contextmanager
def model_embedding(model: QMAE, layers: int | None):
    """``model`` with the embedding ``layers`` for the block, its own afterwards."""
    before = model.embedding_layers
    model.set_embedding(layers)
    try:
        yield model
    finally:
        model.set_embedding(before)
