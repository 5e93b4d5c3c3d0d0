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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import CHECKPOINT, atomic_write, load_model, write_json
from ..circuits.fidelity import fidelity_from_counts
from .backends import BackendError, get_backend, is_local, runtime_service
from .transpile import isa_circuit

__all__ = ["JobRecord", "JobError", "FetchResult", "jobs_dir", "submit", "list_jobs", "fetch", "load_record"]

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
        exact: the exact simulator's value per image (fidelity, or the pixel probabilities).
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
    job_id: str | None = None
    status: str = "submitting"
    error: str | None = None
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))


@dataclass(frozen=True)
class FetchResult:
    """A finished job, interpreted.

    Attributes:
        record: the job record.
        images: per image ``{"index", "fidelity", "stderr", "exact"}`` (fidelity jobs) or
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
        return {"job_id": self.record.job_id, "record_id": self.record.record_id, "backend": self.record.backend,
                "variant": self.record.variant, "shots": self.record.shots, "status": self.record.status,
                "mean_fidelity": self.mean_fidelity, "mean_stderr": self.mean_stderr, "mean_exact": self.mean_exact,
                "images": self.images, "png": self.png}


def jobs_dir() -> Path:
    """``$QMAE_JOBS_DIR``, else ``~/.local/share/qmae-qiskit/jobs``."""
    env = os.environ.get(ENV_JOBS_DIR)
    base = Path(env) if env else Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "qmae-qiskit" / "jobs"
    base.mkdir(parents=True, exist_ok=True)
    return base


def _record_path(record_id: str) -> Path:
    return jobs_dir() / f"{record_id}.json"


def _save(record: JobRecord) -> None:
    write_json(_record_path(record.record_id), asdict(record))


def load_record(job_or_record_id: str) -> JobRecord:
    """The record for a provider job id or our record id.

    Raises:
        JobError: no such record here.
    """
    path = _record_path(job_or_record_id)
    if not path.is_file():
        for candidate in jobs_dir().glob("*.json"):
            if candidate.name.endswith(".result.json"):
                continue
            try:
                data = json.loads(candidate.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if data.get("job_id") == job_or_record_id:
                path = candidate
                break
        else:
            raise JobError(
                f"no job record {job_or_record_id!r} in {jobs_dir()}; list them with `qmae jobs`. For a job submitted on another "
                f"machine, copy its record file (<record_id>.json in that machine's jobs directory) here: the record says how to read the counts"
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


def _images_and_masks(record: JobRecord, model) -> tuple[torch.Tensor, torch.Tensor]:
    from ..masking import masks_from_patches
    from ..train import data_for_run

    data = data_for_run(record.run_dir, split=record.split, data_dir=record.data_dir)
    return data.images[record.indices], masks_from_patches(torch.tensor(record.masks), model.image_size, model.patch_size)


def _pub(record: JobRecord, model, isa) -> tuple[Any, np.ndarray]:
    images, masks = _images_and_masks(record, model)
    values = model.parameter_values(images, masks, record.variant)
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
    sampler.options.environment.job_tags = [f"qmae:{record.record_id}"]  # lets fetch find a job whose id never came back
    if record.local and record.options.get("seed") is not None:
        sampler.options.simulator.seed_simulator = int(record.options["seed"])
    return sampler


def _run(record: JobRecord, model, backend):
    """Submit the record's PUB; returns the provider's job."""
    from qiskit_ibm_runtime import Batch

    isa = isa_circuit(model, backend, record.variant, optimization_level=record.options.get("optimization_level", 3))
    pub, _ = _pub(record, model, isa)
    with Batch(backend=backend) as batch:
        return _sampler(backend, batch, record).run([pub])


def submit(
    run_dir: str | os.PathLike,
    *,
    backend: str,
    images: int = 4,
    shots: int = 4096,
    variant: str = "reset",
    reconstruct: bool = False,
    dynamical_decoupling: bool = False,
    twirling: bool = False,
    optimization_level: int = 3,
    seed: int | None = 0,
    data_dir: str | None = None,
    wait: bool = True,
) -> JobRecord:
    """Submit inference on the first ``images`` test images of a trained run.

    The record is written before the job is submitted and again, with the job id, before waiting
    for the result. With ``wait`` the counts are fetched and saved too.

    Raises:
        ValueError: bad arguments, or a circuit wider than the backend.
        BackendError: unknown backend, no account, no network.
        JobError: the job failed or was cancelled (recorded).
    """
    from ..masking import mask_patches
    from ..train import saved_evaluation_masks

    if images < 1 or shots < 1:
        raise ValueError(f"--images and --shots must be positive, got {images} and {shots}")
    if optimization_level not in (0, 1, 2, 3):
        raise ValueError(f"--optimization-level must be 0..3, got {optimization_level}")
    run_dir = Path(run_dir).resolve()
    model = load_model(run_dir)
    the_backend = get_backend(backend)
    variant = "reconstruction" if reconstruct else variant
    masks = saved_evaluation_masks(run_dir, model, images)
    record = JobRecord(
        record_id=time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8],
        backend=backend, local=is_local(the_backend), variant=variant, run_dir=str(run_dir),
        checkpoint_sha256=_sha256(run_dir / CHECKPOINT), split="test", indices=list(range(images)),
        masks=mask_patches(masks, model.patch_size).tolist(), shots=shots, num_qubits=model.num_qubits, data_dir=data_dir,
        options={"dynamical_decoupling": dynamical_decoupling, "twirling": twirling, "optimization_level": optimization_level, "seed": seed},
        exact=[],
    )
    imgs, msks = _images_and_masks(record, model)
    if len(imgs) < images:
        raise ValueError(f"--images {images} but the test split has {len(imgs)}")
    with torch.no_grad():
        record.exact = (model.fidelity(imgs, msks).tolist() if variant != "reconstruction"
                        else model.reconstruct(imgs, msks).square().flatten(1).tolist())
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
    data = result[0].data
    bits = data["c"] if "c" in data else next(iter(data.values()))
    counts = [bits.get_counts(i) for i in range(len(record.indices))]
    write_json(_counts_path(record), {"job_id": record.job_id, "counts": counts})
    record.status = "done"
    _save(record)


def list_jobs(*, refresh: bool = True) -> list[JobRecord]:
    """Every record in :func:`jobs_dir`, newest first, with the provider's status where reachable."""
    records = []
    for path in sorted(jobs_dir().glob("*.json"), reverse=True):
        if path.name.endswith(".result.json"):
            continue
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
            model = load_model(record.run_dir)
            job = _run(record, model, get_backend(record.backend))
            record.job_id = record.job_id or job.job_id()
        else:
            job = _find_remote_job(record)
            record.job_id = job.job_id()
        _save(record)
        _complete(record, job)
    counts = json.loads(_counts_path(record).read_text())["counts"]
    return _score(record, counts, png)


def _score(record: JobRecord, counts: list[dict[str, int]], png: str | os.PathLike | None) -> FetchResult:
    rows = []
    if record.variant != "reconstruction":
        for index, c, exact in zip(record.indices, counts, record.exact):
            f, err = fidelity_from_counts(c, variant=record.variant, num_qubits=record.num_qubits)
            rows.append({"index": index, "fidelity": f, "stderr": err, "exact": exact})
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
        model = load_model(record.run_dir)
        originals, masks = _images_and_masks(record, model)
        _plot(record, np.stack(recon), np.sqrt(np.asarray(record.exact)), originals.numpy(), figure)
    fids = [r["fidelity"] for r in rows]
    errs = [r["stderr"] or 0.0 for r in rows]
    return FetchResult(record, rows, float(np.mean(fids)), float(np.sqrt(np.sum(np.square(errs))) / len(errs)), float(np.mean([r["exact"] for r in rows])), figure)


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
