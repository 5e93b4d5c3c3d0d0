"""Where the job is submitted: sampled inference jobs on IBM Quantum (or local testing mode).

``submit`` writes a job *record* atomically before it waits for anything, so an interrupted
submit loses nothing: ``fetch`` completes it later (a real job through ``service.job(id)``, found
by its tag if the id never came back; a local one by running the recorded PUB again, seeded).
Records hold what is needed to interpret the counts (backend, variant, image indices, masks,
checkpoint hash, shots, options, the exact simulator's values), never a token.

Sampler: ``qiskit_ibm_runtime.executor_sampler.Sampler`` (the successor of ``SamplerV2`` since
qiskit-ibm-runtime 0.50); it runs in a ``Batch`` (Open Plan friendly) and in local testing mode.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import CHECKPOINT, atomic_write, write_json
from ..circuits.fidelity import fidelity_from_counts
from ..model import load_model
from .backends import get_backend, is_local, runtime_service
from .transpile import isa_circuit

__all__ = [
    "JobRecord",
    "JobError",
    "FetchResult",
    "PROFILES",
    "jobs_dir",
    "submit",
    "list_jobs",
    "fetch",
    "rescore",
    "load_record",
]

ENV_JOBS_DIR = "QMAE_JOBS_DIR"


class JobError(ValueError):
    """An unknown job, a failed or cancelled job, or a record that cannot be read."""


@dataclass
class JobRecord:
    """Everything needed to interpret a job's counts later, on any machine.

    Attributes:
        record_id: our id (the file name); known before the provider's job id.
        job_id: the provider's job id (``None`` until the submission returned).
        backend: backend name.
        local: local testing mode (Aer or a fake device).
        variant: circuit variant (``"reconstruction"`` for ``--reconstruct``).
        run_dir: the trained run.
        checkpoint_sha256: hash of its checkpoint (a re-trained run is detected).
        split, indices: the images (indices into the split).
        masks: masked patch indices per image.
        shots: shots per image.
        options: sampler and transpiler options (dd, twirling, optimization level, seed).
        exact: the exact simulator's value per image (fidelity, or the pixel probabilities) under
            the model's *full* embedding: the number the user wants.
        exact_embedded: the exact value under the approximate embedding that actually ran
            (``None`` with the exact embedding): separates approximation error from noise.
        training_indices, training_masks, training_exact: learned mitigation (``--cdr``): training
            images (train split), their masks, and the exact values of the circuit that ran.
        training_exact_full: the training circuits' exact values under the full embedding (the
            regression target with ``cdr_target="full"``).
        status: ``submitting``, ``submitted``, ``done``, ``failed`` or ``cancelled``.
        error: the failure, if any.
        created: ISO time of submission.
    """

    record_id: str
    backend: str
    local: bool
    variant: str
    run_dir: str
    checkpoint_sha256: str
    split: str
    indices: list[int]
    masks: list[list[int]]
    shots: int
    options: dict[str, Any]
    exact: list[Any]
    num_qubits: int
    data_dir: str | None = None
    exact_embedded: list[Any] | None = None
    training_indices: list[int] | None = None
    training_masks: list[list[int]] | None = None
    training_exact: list[float] | None = None
    training_exact_full: list[float] | None = None
    job_id: str | None = None
    status: str = "submitting"
    error: str | None = None
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))


@dataclass(frozen=True)
class FetchResult:
    """A finished job, interpreted.

    Attributes:
        record: the job record.
        images: per image ``{"index", "fidelity", "stderr", "exact", "raw", "exact_embedded"}``
            (fidelity jobs; ``raw`` is the unmitigated estimate) or
            ``{"index", "fidelity", "exact": 1.0, ...}`` where fidelity is the classical fidelity of
            the measured pixel distribution with the exact one (reconstruction jobs).
        mean_fidelity, mean_stderr, mean_exact: averages over the images.
        png: path of the reconstructed-images figure (reconstruction jobs).
    """

    record: JobRecord
    images: list[dict[str, Any]]
    mean_fidelity: float
    mean_stderr: float
    mean_exact: float
    png: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "job_id": self.record.job_id,
            "record_id": self.record.record_id,
            "backend": self.record.backend,
            "variant": self.record.variant,
            "shots": self.record.shots,
            "status": self.record.status,
            "mean_fidelity": self.mean_fidelity,
            "mean_stderr": self.mean_stderr,
            "mean_exact": self.mean_exact,
            "images": self.images,
            "png": self.png,
        }


def jobs_dir() -> Path:
    """``$QMAE_JOBS_DIR``, else ``~/.local/share/qmae-qiskit/jobs``."""
    env = os.environ.get(ENV_JOBS_DIR)
    base = (
        Path(env)
        if env
        else Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "qmae-qiskit" / "jobs"
    )
    base.mkdir(parents=True, exist_ok=True)
    return base


def _record_path(record_id: str) -> Path:
    return jobs_dir() / f"{record_id}.json"


def _save(record: JobRecord) -> None:
    write_json(_record_path(record.record_id), asdict(record))


def _record_files() -> list[Path]:
    """The job records in :func:`jobs_dir` (not their counts or readout calibrations)."""
    return [p for p in jobs_dir().glob("*.json") if not p.name.endswith((".result.json", ".m3.json"))]


def load_record(job_or_record_id: str) -> JobRecord:
    """The record for a provider job id or our record id.

    Raises:
        JobError: no such record here.
    """
    path = _record_path(job_or_record_id)
    if not path.is_file():
        for candidate in _record_files():
            try:
                data = json.loads(candidate.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if data.get("job_id") == job_or_record_id:
                path = candidate
                break
        else:
            raise JobError(
                f"no job record {job_or_record_id!r} in {jobs_dir()}; list them with `qmae jobs`. For a job submitted "
                "on another "
                "machine, copy its record file (<record_id>.json in that machine's jobs directory) here: the record "
                "says how to read the counts"
            )
    try:
        return JobRecord(**json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise JobError(f"job record {path} is unreadable ({exc}); remove it") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _images_and_masks(record: JobRecord, model, *, training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The record's test images and masks, or (``training``) its CDR training images and masks."""
    from ..masking import masks_from_patches
    from ..runs import data_for_run

    split, indices, masks = (
        ("train", record.training_indices, record.training_masks)
        if training
        else (record.split, record.indices, record.masks)
    )
    data = data_for_run(record.run_dir, split=split, data_dir=record.data_dir)
    return data.images[indices], masks_from_patches(torch.tensor(masks), model.image_size, model.patch_size)


def _pub(record: JobRecord, model, isa) -> tuple[Any, np.ndarray]:
    images, masks = _images_and_masks(record, model)
    values = model.parameter_values(images, masks, record.variant)
    if record.training_indices:  # learned mitigation: training circuits ride in the same PUB, after the images
        values = np.vstack(
            [values, model.parameter_values(*_images_and_masks(record, model, training=True), record.variant)]
        )
    logical = [p.name for p in model.template(record.variant).circuit.parameters]
    column = {name: k for k, name in enumerate(logical)}
    order = [column[p.name] for p in isa.parameters]  # bind by name: the ISA circuit may order them otherwise
    return (isa, values[:, order]), values


def _sampler(backend, batch, record: JobRecord):
    from qiskit_ibm_runtime.executor_sampler import Sampler

    sampler = Sampler(mode=batch)
    sampler.options.default_shots = record.shots
    sampler.options.dynamical_decoupling.enable = bool(record.options.get("dynamical_decoupling"))
    sampler.options.twirling.enable_gates = bool(record.options.get("twirling"))
    sampler.options.twirling.enable_measure = bool(record.options.get("twirling"))
    sampler.options.environment.job_tags = [
        f"qmae:{record.record_id}"
    ]  # lets fetch find a job whose id never came back
    if record.local and record.options.get("seed") is not None:
        sampler.options.simulator.seed_simulator = int(record.options["seed"])
    return sampler


def _model_for(record: JobRecord):
    """The record's model, with the embedding that ran."""
    return load_model(record.run_dir).set_embedding(record.options.get("embedding_layers"))


def _scales(record: JobRecord) -> tuple[int, ...]:
    return tuple(record.options.get("zne") or (1,))


def _calibration_path(record: JobRecord) -> Path:
    return jobs_dir() / f"{record.record_id}.m3.json"


def _run(record: JobRecord, model, backend):
    """Submit the record's PUBs (one per ZNE scale) and, with readout mitigation, mthree's
    calibration in the same Batch; returns the provider's job."""
    from qiskit_ibm_runtime import Batch

    from .mitigation import ReadoutCalibration, fold_two_qubit_gates, measured_qubits

    isa = isa_circuit(model, backend, record.variant, optimization_level=record.options.get("optimization_level", 3))
    (_, values), _ = _pub(record, model, isa)
    pubs = [(fold_two_qubit_gates(isa, scale), values) for scale in _scales(record)]
    with Batch(backend=backend) as batch:
        job = _sampler(backend, batch, record).run(pubs)
        if record.options.get("readout_mitigation") and not _calibration_path(record).is_file():
            ReadoutCalibration.calibrate(
                backend,
                measured_qubits(isa),
                _calibration_path(record),
                shots=record.shots,
                mode=None if record.local else batch,
            )
        return job


PROFILES: dict[str, dict[str, Any]] = {
    # chosen from the measured table in docs/hardware.md (benchmarks/hardware.py)
    # (line encoder run: 266 two-qubit gates on FakeFez, mean absolute error 0.036); ZNE added nothing on top of CDR
    "best": {
        "variant": "compute_uncompute",
        "embedding_layers": 16,
        "readout_mitigation": True,
        "zne": None,
        "cdr": 16,
        "cdr_target": "full",
        "twirling": False,
    },
}


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
        variant: fidelity circuit (default ``"reset"``; ``--profile`` may choose another).
        reconstruct: sample the reconstruction circuit instead.
        dynamical_decoupling, twirling: runtime Sampler options.
        optimization_level, seed: transpiler level; simulator seed in local mode.
        data_dir: MNIST directory (default: the run's source).
        embedding_layers: the approximate ladder embedding with this many CNOT layers
            (default: the run's own, which is the exact embedding unless it was fine-tuned with one).
        readout_mitigation: correct the counts with an mthree calibration.
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
        profile: a named configuration (:data:`PROFILES`; ``"best"`` is the measured best on
            FakeFez); explicit arguments override it.

    Raises:
        ValueError: bad arguments, or a circuit wider than the backend.
        BackendError: unknown backend, no account, no network.
        JobError: the job failed or was cancelled (recorded).
    """
    from ..masking import mask_patches
    from ..runs import saved_evaluation_masks
    from .mitigation import EXTRAPOLATIONS, parse_scales

    if profile is not None:
        if profile not in PROFILES:
            raise ValueError(f"unknown --profile {profile!r}; choose one of {', '.join(PROFILES)}")
        chosen = PROFILES[profile]
        variant = chosen["variant"] if variant is None else variant
        embedding_layers = chosen["embedding_layers"] if embedding_layers is None else embedding_layers
        readout_mitigation = chosen["readout_mitigation"] if readout_mitigation is None else readout_mitigation
        zne = chosen["zne"] if zne is None else zne
        twirling = chosen["twirling"] if twirling is None else twirling
        cdr = chosen.get("cdr") if cdr is None else cdr
        cdr_target = chosen.get("cdr_target") if cdr_target is None else cdr_target
    variant = "reset" if variant is None else variant
    if images < 1 or shots < 1:
        raise ValueError(f"--images and --shots must be positive, got {images} and {shots}")
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
    if cdr is not None and cdr < 3:
        raise ValueError(f"--cdr needs at least 3 training circuits to fit a line, got {cdr}")
    run_dir = Path(run_dir).resolve()
    model = load_model(run_dir)
    if embedding_layers is None:
        embedding_layers = model.embedding_layers  # a run fine-tuned with the ladder runs it
    model.set_embedding(embedding_layers)  # validates it
    model.set_embedding(None)
    the_backend = get_backend(backend)
    variant = "reconstruction" if reconstruct else variant
    masks = saved_evaluation_masks(run_dir, model, images)
    record = JobRecord(
        record_id=time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8],
        backend=backend,
        local=is_local(the_backend),
        variant=variant,
        run_dir=str(run_dir),
        checkpoint_sha256=_sha256(run_dir / CHECKPOINT),
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
            "zne": list(scales) if scales else None,
            "extrapolation": extrapolation,
            "cdr": cdr,
            "cdr_target": cdr_target,
            "profile": profile,
        },
        exact=[],
    )
    imgs, msks = _images_and_masks(record, model)
    if len(imgs) < images:
        raise ValueError(f"--images {images} but the test split has {len(imgs)}")

    def exact_values() -> list[Any]:
        with torch.no_grad():
            return (
                model.fidelity(imgs, msks).tolist()
                if variant != "reconstruction"
                else model.reconstruct(imgs, msks).square().flatten(1).tolist()
            )

    record.exact = exact_values()  # the full embedding: what the user wants to know
    if embedding_layers is not None:
        model.set_embedding(embedding_layers)
        record.exact_embedded = exact_values()
    if cdr:
        from ..runs import data_for_run

        generator = torch.Generator().manual_seed(0 if seed is None else seed)
        train_size = len(data_for_run(record.run_dir, split="train", data_dir=record.data_dir).labels)
        record.training_indices = torch.randperm(train_size, generator=generator)[:cdr].tolist()
        record.training_masks = mask_patches(model.random_mask(cdr, generator=generator), model.patch_size).tolist()
        with torch.no_grad():
            training = _images_and_masks(record, model, training=True)
            record.training_exact = model.fidelity(*training).tolist()  # of the circuit that runs
            record.training_exact_full = model.set_embedding(None).fidelity(*training).tolist()
            model.set_embedding(embedding_layers)
    _save(record)  # before anything can fail remotely: `fetch` can always complete it
    job = _run(record, model, the_backend)
    record.job_id, record.status = job.job_id(), "submitted"
    _save(record)
    if wait:
        _complete(record, job)
    return record


def _counts_path(record: JobRecord) -> Path:
    return jobs_dir() / f"{record.record_id}.result.json"


def _complete(record: JobRecord, job) -> None:
    """Wait for ``job``, save its counts, mark the record done (or failed)."""
    try:
        result = job.result()
    except Exception as exc:  # a failed or cancelled job: the client raises its own types
        status = "cancelled" if "cancel" in str(exc).lower() else "failed"
        record.status, record.error = status, f"{type(exc).__name__}: {exc}"
        _save(record)
        raise JobError(f"job {record.job_id} {status}: {exc}") from None
    by_scale = []
    for pub_result in result:
        data = pub_result.data
        bits = data["c"] if "c" in data else next(iter(data.values()))
        by_scale.append([bits.get_counts(i) for i in range(len(record.indices) + len(record.training_indices or []))])
    payload: dict[str, Any] = {"job_id": record.job_id, "counts": by_scale[0]}
    if len(by_scale) > 1:
        payload["counts_by_scale"] = {str(s): c for s, c in zip(_scales(record), by_scale)}
    write_json(_counts_path(record), payload)
    record.status = "done"
    _save(record)


def list_jobs(*, refresh: bool = True) -> list[JobRecord]:
    """Every record in :func:`jobs_dir`, newest first, with the provider's status where reachable."""
    records = []
    for path in sorted(_record_files(), reverse=True):
        try:
            record = JobRecord(**json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError, TypeError):
            continue
        if refresh and not record.local and record.status == "submitted" and record.job_id:
            try:
                record.status = f"submitted ({runtime_service().job(record.job_id).status()})"
            except Exception:
                record.status = "submitted (status unavailable offline)"
        records.append(record)
    return records


def _find_remote_job(record: JobRecord):
    service = runtime_service()
    if record.job_id:
        return service.job(record.job_id)
    jobs = service.jobs(job_tags=[f"qmae:{record.record_id}"], limit=1)
    if not jobs:
        raise JobError(f"record {record.record_id} was interrupted before IBM Quantum accepted the job; submit again")
    return jobs[0]


def fetch(job_or_record_id: str, *, png: str | os.PathLike | None = None) -> FetchResult:
    """Get a job's counts (waiting if needed) and score them against the exact simulator.

    Raises:
        JobError: unknown job, failed or cancelled job.
        BackendError: the job is remote and IBM Quantum cannot be reached (the record stays).
    """
    record = load_record(job_or_record_id)
    if record.status in ("failed", "cancelled"):
        raise JobError(f"job {record.job_id or record.record_id} {record.status}: {record.error}")
    if not _counts_path(record).is_file():
        if record.local:  # nothing to look up: run the recorded, seeded PUB again
            model = _model_for(record)
            job = _run(record, model, get_backend(record.backend))
            record.job_id = record.job_id or job.job_id()
        else:
            job = _find_remote_job(record)
            record.job_id = job.job_id()
        _save(record)
        _complete(record, job)
    return _score(record, _saved_counts(record), png)


def _saved_counts(record: JobRecord) -> dict[int, list[dict[str, int]]]:
    """Counts per ZNE scale (scale 1 alone without ZNE), per binding: images, then CDR circuits."""
    saved = json.loads(_counts_path(record).read_text())
    return {int(k): v for k, v in (saved.get("counts_by_scale") or {"1": saved["counts"]}).items()}


def rescore(
    job_or_record_id: str,
    *,
    readout_mitigation: bool = True,
    zne: bool = True,
    cdr: bool = True,
    cdr_target: str | None = None,
) -> FetchResult:
    """Score a finished job again with a subset of the mitigation it recorded (no new run), to
    see what each technique contributes.

    Raises:
        JobError: unknown or unfinished job.
    """
    import copy

    record = copy.deepcopy(load_record(job_or_record_id))
    if not _counts_path(record).is_file():
        raise JobError(f"job {job_or_record_id} has no counts yet; `qmae fetch {job_or_record_id}` first")
    by_scale = _saved_counts(record)
    record.options["readout_mitigation"] = bool(record.options.get("readout_mitigation")) and readout_mitigation
    if not zne:
        by_scale = {1: by_scale[1]}
    if not cdr:
        record.training_indices = None
    if cdr_target is not None:
        record.options["cdr_target"] = cdr_target
    return _score(record, by_scale, None)


def _mitigated(record: JobRecord, counts: dict[str, int]) -> tuple[float, float]:
    """Fidelity and standard error from one image's counts, readout-corrected if recorded."""
    f, err = fidelity_from_counts(counts, variant=record.variant, num_qubits=record.num_qubits)
    if not record.options.get("readout_mitigation"):
        return f, err
    calibration, qubits = _calibration(record)
    quasi, overhead = calibration.correct(counts, qubits)
    f_mit, _ = fidelity_from_counts(quasi, variant=record.variant, num_qubits=record.num_qubits)
    return f_mit, err * float(np.sqrt(max(overhead, 1.0)))


_CALIBRATIONS: dict[str, Any] = {}


def _calibration(record: JobRecord):
    from .mitigation import ReadoutCalibration, measured_qubits

    if record.record_id not in _CALIBRATIONS:
        model = _model_for(record)
        backend = get_backend(record.backend)
        isa = isa_circuit(
            model, backend, record.variant, optimization_level=record.options.get("optimization_level", 3)
        )
        path = _calibration_path(record)
        if not path.is_file():  # e.g. a record copied from another machine without its calibration: calibrate now
            ReadoutCalibration.calibrate(backend, measured_qubits(isa), path, shots=record.shots)
        _CALIBRATIONS[record.record_id] = (ReadoutCalibration(path), measured_qubits(isa))
    return _CALIBRATIONS[record.record_id]


def _learned_map(
    record: JobRecord, training: list[tuple[float, float]], estimates: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """CDR-style: fit ``exact = a * estimate + b`` on the training circuits, apply it."""
    x = np.array([v for v, _ in training])
    full = record.options.get("cdr_target") == "full" and record.training_exact_full is not None
    y = np.array(record.training_exact_full if full else record.training_exact)
    a, b = np.polyfit(x, y, 1)
    residual = float(np.std(y - (a * x + b), ddof=2)) if len(x) > 2 else 0.0
    return [(float(a * v + b), float(np.hypot(a * e, residual))) for v, e in estimates]


def _score(record: JobRecord, by_scale: dict[int, list[dict[str, int]]], png: str | os.PathLike | None) -> FetchResult:
    from .mitigation import extrapolate

    rows = []
    counts = by_scale[1]
    if record.variant != "reconstruction":
        embedded = record.exact_embedded or [None] * len(record.indices)

        def estimate(i: int) -> tuple[float, float]:  # readout-corrected, then extrapolated to zero noise
            if len(by_scale) == 1:
                return _mitigated(record, counts[i])
            scales = sorted(by_scale)
            per_scale = [_mitigated(record, by_scale[s][i]) for s in scales]
            return extrapolate(
                scales,
                [v for v, _ in per_scale],
                [e for _, e in per_scale],
                method=record.options.get("extrapolation", "exponential"),
            )

        estimates = [estimate(i) for i in range(len(record.indices))]
        if record.training_indices:
            estimates = _learned_map(
                record, [estimate(len(record.indices) + k) for k in range(len(record.training_indices))], estimates
            )
        for i, (index, exact) in enumerate(zip(record.indices, record.exact)):
            raw, _ = fidelity_from_counts(counts[i], variant=record.variant, num_qubits=record.num_qubits)
            f, err = estimates[i]
            rows.append(
                {
                    "index": index,
                    "fidelity": f,
                    "stderr": err,
                    "exact": exact,
                    "raw": raw,
                    "exact_embedded": embedded[i],
                }
            )
        figure = None
    else:
        recon = []
        for index, c, exact in zip(record.indices, counts, record.exact):
            p = np.zeros(2**record.num_qubits)
            for key, v in c.items():
                p[int(key.replace(" ", ""), 2)] = v
            p /= p.sum()
            q = np.asarray(exact)
            recon.append(np.sqrt(p))
            rows.append({"index": index, "fidelity": float(np.sqrt(p * q).sum() ** 2), "stderr": None, "exact": 1.0})
        figure = str(png or jobs_dir() / f"{record.record_id}.png")
        model = _model_for(record)
        originals, masks = _images_and_masks(record, model)
        _plot(record, np.stack(recon), np.sqrt(np.asarray(record.exact)), originals.numpy(), figure)
    fids = [r["fidelity"] for r in rows]
    errs = [r["stderr"] or 0.0 for r in rows]
    return FetchResult(
        record,
        rows,
        float(np.mean(fids)),
        float(np.sqrt(np.sum(np.square(errs))) / len(errs)),
        float(np.mean([r["exact"] for r in rows])),
        figure,
    )


def _plot(record: JobRecord, measured: np.ndarray, exact: np.ndarray, originals: np.ndarray, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    side = int(round(np.sqrt(measured.shape[1])))
    fig, axes = plt.subplots(3, len(measured), figsize=(1.6 * len(measured), 5.0), squeeze=False)
    for i in range(len(measured)):
        for row, img in enumerate((measured[i], exact[i], originals[i].reshape(-1))):
            axes[row, i].imshow(img.reshape(side, side), cmap="gray")
            axes[row, i].axis("off")
    axes[0, 0].set_title(f"{record.backend}, {record.shots} shots", loc="left", fontsize=8)
    axes[1, 0].set_title("exact simulator", loc="left", fontsize=8)
    axes[2, 0].set_title("original", loc="left", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100))
    plt.close(fig)
