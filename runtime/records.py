"""Job records on disk: the base layer of a hardware job's life (no Qiskit client code here).

A record is written atomically *before* anything is sent to a backend and again whenever its state
changes, so an interrupted ``submit`` loses nothing. It holds everything needed to interpret the
counts later, on any machine (backend, variant, image indices, masks, checkpoint hash, shots,
options, the exact simulator's values), never a token. Next to ``<record_id>.json`` in the jobs
directory live the job's counts (``<record_id>.result.json``) and, with readout mitigation, its
mthree calibration (``<record_id>.m3.json``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import time
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..checkpoint import CHECKPOINT, write_json
from ..masking import masks_from_patches
from ..options import OptionError
from ..runs import data_for_run
from .options import SubmitOptions

if TYPE_CHECKING:
    from ..model import QMAE

__all__ = [
    "ENV_JOBS_DIR",
    "JobError",
    "JobRecord",
    "jobs_dir",
    "record_path",
    "counts_path",
    "calibration_path",
    "save_record",
    "load_record",
    "record_files",
    "read_records",
    "save_counts",
    "saved_counts",
    "saved_calibration_counts",
    "record_images",
    "checkpoint_sha256",
    "model_for",
]

ENV_JOBS_DIR = "QMAE_JOBS_DIR"

log = logging.getLogger(__name__)


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
        options: how the job runs and is scored (:class:`~qmae_qiskit.runtime.SubmitOptions`: dd,
            twirling, optimization level, seed, mitigation, the profile); the file keeps them as a JSON
            object (:meth:`~qmae_qiskit.runtime.SubmitOptions.record_options`).
        exact: the exact simulator's value per image (fidelity, or the pixel probabilities) under
            the model's *full* embedding: the number the user wants.
        num_qubits: data qubits ``n``.
        data_dir: where the images came from, if not the run's own source.
        exact_embedded: the exact value under the approximate embedding that actually ran
            (``None`` with the exact embedding): separates approximation error from noise.
        training_indices, training_masks, training_exact: learned mitigation (``--cdr``): training
            images (train split), their masks, and the exact values of the circuit that ran.
        training_exact_full: the training circuits' exact values under the full embedding (the
            regression target with ``cdr_target="full"``).
        exact_keep: post-selected variants: the exact fraction of shots kept, per image.
        calibration: readout mitigation: mthree's calibration plan (physical qubits, method,
            shots) whose circuits ran as a second job in the same Batch.
        calibration_job_id: the provider's id of that calibration job.
        bases: ``--features`` jobs: the measurement bases (one letter per latent qubit), each image
            bound once per basis, image-major; ``exact`` then holds each image's exact features.
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
    options: SubmitOptions
    exact: list[Any]
    num_qubits: int
    data_dir: str | None = None
    exact_embedded: list[Any] | None = None
    training_indices: list[int] | None = None
    training_masks: list[list[int]] | None = None
    training_exact: list[float] | None = None
    training_exact_full: list[float] | None = None
    exact_keep: list[float] | None = None
    calibration: dict[str, Any] | None = None
    calibration_job_id: str | None = None
    bases: list[str] | None = None
    job_id: str | None = None
    status: str = "submitting"
    error: str | None = None
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def __post_init__(self) -> None:
        # the file's JSON object becomes the options' type; a bad one stays a dict, and problems() says why
        if isinstance(self.options, dict):
            try:
                self.options = SubmitOptions.from_record(
                    self.options,
                    images=len(self.indices),
                    shots=self.shots,
                    variant=self.variant,
                    data_dir=self.data_dir,
                    where="options",
                )
            except (OptionError, TypeError, AttributeError) as exc:
                self.__dict__["_options_problem"] = str(exc)

    def problems(self) -> list[str]:
        """What is wrong with the fields read back (empty for a sound record): the schema a
        hand-edited or truncated record file is checked against before anything is scored."""
        found = [f"{name} {problem}" for name, problem in _type_problems(self)]
        if not isinstance(self.options, SubmitOptions) and "_options_problem" in self.__dict__:
            found.append(self.__dict__["_options_problem"])

        def ints(name: str, values: Any, minimum: int = 0) -> bool:
            ok = isinstance(values, list) and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in values
            )
            if not ok:
                found.append(f"{name} must be a list of integers >= {minimum}")
            return ok

        if not isinstance(self.record_id, str) or not _ID.fullmatch(self.record_id):
            found.append("record_id must be a name (letters, digits, '-', '_', '.')")
        if not isinstance(self.shots, int) or isinstance(self.shots, bool) or self.shots < 1:
            found.append(f"shots must be an integer >= 1, got {self.shots!r}")
        if not isinstance(self.num_qubits, int) or isinstance(self.num_qubits, bool) or self.num_qubits < 1:
            found.append(f"num_qubits must be an integer >= 1, got {self.num_qubits!r}")
        images = len(self.indices) if ints("indices", self.indices) else 0
        if not (isinstance(self.masks, list) and len(self.masks) == images):
            found.append(f"masks must hold one entry per image ({images})")
        elif not all(isinstance(m, list) and all(isinstance(q, int) and q >= 0 for q in m) for m in self.masks):
            found.append("masks must be lists of patch indices (integers >= 0)")
        per_image = {"exact": self.exact, "exact_embedded": self.exact_embedded, "exact_keep": self.exact_keep}
        for name, values in per_image.items():
            if values is None or name != "exact" and not values:
                continue
            if not isinstance(values, list) or len(values) != images:
                count = len(values) if isinstance(values, list) else type(values).__name__
                found.append(f"{name} must hold one value per image ({images}), got {count}")
        if self.training_indices is not None and ints("training_indices", self.training_indices):
            for name in ("training_masks", "training_exact"):
                values = getattr(self, name)
                if values is not None and (not isinstance(values, list) or len(values) != len(self.training_indices)):
                    found.append(f"{name} must hold one entry per training circuit ({len(self.training_indices)})")
        return found

    @property
    def bindings(self) -> int:
        """Parameter bindings per PUB: the test images (each once per basis for ``--features``),
        then the CDR training circuits."""
        return len(self.indices) * len(self.bases or [""]) + len(self.training_indices or [])

    @property
    def scales(self) -> tuple[int, ...]:
        """ZNE noise scales (``(1,)`` without ZNE): one PUB each."""
        return tuple(self.options.zne or (1,))


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a JSON value read back has the declared type (finite where a number)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return not (isinstance(value, float) and not math.isfinite(value))
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is SubmitOptions:  # the file's JSON object, typed by JobRecord.__post_init__ (a bad one says why)
        return isinstance(value, (dict, SubmitOptions))
    return isinstance(value, hint)


def _type_problems(record: JobRecord) -> list[tuple[str, str]]:
    """``(field, problem)`` for every field whose value is not of its declared type: one check
    from the dataclass's own annotations, so a new field is checked without a new rule."""
    hints = typing.get_type_hints(JobRecord)
    out = []
    for f in dataclasses.fields(JobRecord):
        value = getattr(record, f.name)
        if not _conforms(value, hints[f.name]):
            shown = repr(value) if not isinstance(value, (list, dict)) else type(value).__name__
            out.append((f.name, f"must be {_spell(hints[f.name])}, got {shown[:40]}"))
    return out


def _spell(hint: Any) -> str:
    return str(hint).replace("typing.", "")


def jobs_dir() -> Path:
    """``$QMAE_JOBS_DIR``, else ``~/.local/share/qmae-qiskit/jobs`` (created)."""
    env = os.environ.get(ENV_JOBS_DIR)
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    base = Path(env) if env else data_home / "qmae-qiskit" / "jobs"
    base.mkdir(parents=True, exist_ok=True)
    return base


def record_path(record_id: str) -> Path:
    """``<jobs dir>/<record_id>.json``."""
    return jobs_dir() / f"{record_id}.json"


def counts_path(record: JobRecord) -> Path:
    """Where the job's counts are saved once it finished."""
    return jobs_dir() / f"{record.record_id}.result.json"


def calibration_path(record: JobRecord) -> Path:
    """Where the job's mthree readout calibration is saved."""
    return jobs_dir() / f"{record.record_id}.m3.json"


def save_record(record: JobRecord) -> None:
    """Atomically (re)write the record."""
    data = asdict(record)
    data["options"] = record.options.record_options()  # the file's keys, as every version wrote them
    write_json(record_path(record.record_id), data)


def record_files() -> list[Path]:
    """The job records in :func:`jobs_dir` (not their counts or readout calibrations)."""
    return [p for p in jobs_dir().glob("*.json") if not p.name.endswith((".result.json", ".m3.json"))]


def _read(path: Path) -> JobRecord:
    """The record in ``path``.

    Raises:
        JobError: unreadable, not JSON, not a JSON object, or not a record's fields.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JobError(
            f"job record {path} is unreadable ({type(exc).__name__}); move it out of {path.parent}"
        ) from None
    if not isinstance(data, dict):
        raise JobError(f"job record {path} is a JSON {type(data).__name__}, not a record; move it out of {path.parent}")
    try:
        record = JobRecord(**data)
    except TypeError as exc:
        raise JobError(
            f"job record {path} does not hold a record's fields ({exc}); move it out of {path.parent}"
        ) from None
    problems = record.problems()
    if problems:
        raise JobError(f"job record {path} is damaged: {'; '.join(problems)}; move it out of {path.parent}")
    return record


def read_records() -> list[JobRecord]:
    """Every readable record, newest first; an unreadable file is skipped with a one-line warning
    naming it (one bad file never hides the others)."""
    records = []
    for path in sorted(record_files(), reverse=True):
        try:
            records.append(_read(path))
        except JobError as exc:
            log.warning("skipped: %s", exc)
    return records


_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # a record or provider job id: a name, not a path


def load_record(job_or_record_id: str) -> JobRecord:
    """The record for a provider job id or our record id.

    Raises:
        JobError: no such record here, or an unreadable one.
    """
    if not isinstance(job_or_record_id, str) or not _ID.fullmatch(job_or_record_id):
        raise JobError(
            f"{job_or_record_id!r} is not a job id: ids are names (letters, digits, '-', '_', '.'), never paths; "
            "list them with `qmae jobs`"
        )
    path = record_path(job_or_record_id)
    if path.is_file():
        return _read(path)
    for record in read_records():  # by the provider's job id (unreadable files are skipped, with a warning)
        if record.job_id == job_or_record_id:
            return record
    raise JobError(
        f"no job record {job_or_record_id!r} in {jobs_dir()}; list them with `qmae jobs`. For a job "
        "submitted on another machine, copy its record file (<record_id>.json in that machine's jobs "
        "directory) here: the record says how to read the counts"
    )


def save_counts(
    record: JobRecord, by_scale: list[list[dict[str, int]]], calibration: list[dict[str, int]] | None = None
) -> None:
    """Save a finished job's counts: per ZNE scale, per binding (and its calibration job's)."""
    payload: dict[str, Any] = {"job_id": record.job_id, "counts": by_scale[0]}
    if len(by_scale) > 1:
        payload["counts_by_scale"] = {str(s): c for s, c in zip(record.scales, by_scale)}
    if calibration is not None:
        payload["calibration_counts"] = calibration
    write_json(counts_path(record), payload)


def saved_calibration_counts(record: JobRecord) -> list[dict[str, int]] | None:
    """The counts of the record's readout-calibration circuits, if they were saved."""
    try:
        return json.loads(counts_path(record).read_text(encoding="utf-8")).get("calibration_counts")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None


def saved_counts(record: JobRecord) -> dict[int, list[dict[str, int]]]:
    """Counts per ZNE scale (scale 1 alone without ZNE), per binding: images, then CDR circuits."""
    path = counts_path(record)
    fix = f"delete the file and `qmae fetch {record.record_id}` gets them again"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        by_scale = {int(k): v for k, v in (saved.get("counts_by_scale") or {"1": saved["counts"]}).items()}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, ValueError) as exc:
        raise JobError(f"the saved counts {path} are unreadable ({type(exc).__name__}); {fix}") from None
    for scale, bindings in by_scale.items():  # the schema: one mapping per binding, counts >= 0
        if not isinstance(bindings, list) or len(bindings) != record.bindings:
            got = len(bindings) if isinstance(bindings, list) else type(bindings).__name__
            raise JobError(
                f"the saved counts {path} hold {got} circuits at scale {scale}, not {record.bindings}; {fix}"
            )
        for i, counts in enumerate(bindings):
            if not isinstance(counts, dict) or not counts:
                raise JobError(f"the saved counts {path} of circuit {i} are not a non-empty mapping; {fix}")
            for key, value in counts.items():
                bits = key.replace(" ", "")
                if not bits or set(bits) - {"0", "1"}:
                    raise JobError(f"the saved counts {path} of circuit {i} have the outcome {key!r}; {fix}")
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                    raise JobError(f"the saved counts {path} of circuit {i} have the count {value!r} for {key}; {fix}")
    return by_scale


def _split_of(record: JobRecord, split: str) -> Any:
    # a record copied from another machine may name a data directory that is not here: search instead
    data_dir = record.data_dir if record.data_dir and Path(record.data_dir).is_dir() else None
    return data_for_run(record.run_dir, split=split, data_dir=data_dir)


def check_indices(record: JobRecord) -> None:
    """The record's image indices exist in its splits (a hand-edited index is refused, not scored).

    Raises:
        JobError: an index outside its split.
    """
    for split, indices in ((record.split, record.indices), ("train", record.training_indices)):
        if not indices:
            continue
        size = len(_split_of(record, split).images)
        bad = [i for i in indices if not 0 <= i < size]
        if bad:
            raise JobError(
                f"job record {record.record_id} names {split} image(s) {bad[:5]} but the split has {size} images; "
                "the record was edited or belongs to another dataset"
            )


def record_images(record: JobRecord, model: QMAE, *, training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The record's test images and masks, or (``training``) its CDR training images and masks."""
    if training:
        split, indices, masks = "train", record.training_indices, record.training_masks
    else:
        split, indices, masks = record.split, record.indices, record.masks
    check_indices(record)
    data = _split_of(record, split)
    rows, cols = model.image_size // model.patch_size[0], model.image_size // model.patch_size[1]
    if any(not 0 <= p < rows * cols for m in masks or [] for p in m):
        raise JobError(f"job record {record.record_id} has a mask patch outside the {rows}x{cols} patch grid")
    return data.images[indices], masks_from_patches(torch.tensor(masks), model.image_size, model.patch_size)


def checkpoint_sha256(run_dir: str | os.PathLike[str]) -> str:
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
    from ..model import load_model

    found = checkpoint_sha256(record.run_dir)
    if found != record.checkpoint_sha256:
        raise JobError(
            f"the checkpoint of {record.run_dir} changed since job {record.job_id or record.record_id} was submitted "
            f"(sha256 {record.checkpoint_sha256[:12]}... recorded, {found[:12]}... now); restore the run it ran, or "
            "submit again"
        )
    return load_model(record.run_dir).set_embedding(record.options.embedding_layers)
