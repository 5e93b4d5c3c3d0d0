"""Scoring a finished job: its counts, mitigated as recorded, against the exact simulator.

The counts are read through the variant's estimator (:func:`~qmae_qiskit.circuits.fidelity_from_counts`)
and corrected with the mitigation the record names (:mod:`.mitigation`); every image's estimate
sits next to the exact engine's value. ``rescore`` scores the same counts again with a subset of
the mitigation, to see what each technique contributes.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..circuits.features import FEATURES, features_from_counts
from ..circuits.fidelity import (
    POSTSELECTED_VARIANTS,
    RECONSTRUCTION,
    RECONSTRUCTION_VARIANTS,
    fidelity_from_counts,
    keep_fraction_from_counts,
)
from ..figures import new_figure, save_figure
from .backends import get_backend
from .mitigation import (
    Counts,
    Estimate,
    ReadoutCalibration,
    calibration_plan,
    measured_qubits,
    mitigated_estimates,
)
from .records import (
    JobError,
    JobRecord,
    calibration_path,
    counts_path,
    jobs_dir,
    load_record,
    model_for,
    record_images,
    saved_calibration_counts,
    saved_counts,
)
from .transpile import isa_circuit

__all__ = ["FetchResult", "score", "rescore", "composite_accuracy"]


@dataclass(frozen=True)
class FetchResult:
    """A finished job, interpreted.

    Attributes:
        record: the job record.
        images: per image ``{"index", "fidelity", "stderr", "exact", "raw", "exact_embedded"}``
            (fidelity jobs; ``raw`` is the unmitigated estimate) or
            ``{"index", "fidelity", "exact": 1.0, ...}`` where fidelity is the classical fidelity of
            the measured pixel distribution with the exact one (reconstruction jobs, with the
            composite's ``composite_fidelity`` and ``masked_psnr``, measured and ``exact_``).
        mean_fidelity, mean_stderr, mean_exact: averages over the images.
        png: path of the reconstructed-images figure (reconstruction jobs).
        mean_keep_fraction: post-selected jobs: the mean fraction of shots kept (``None`` otherwise).
        composite_accuracy: reconstruction jobs fetched with ``accuracy=True``: the classifier's
            accuracy on the composites from counts, the exact composites, the mean-image fill and
            the originals (:func:`composite_accuracy`).
        features: ``--features`` jobs (whose ``images`` rows are ``{"index", "features",
            "stderr", "exact", "raw"}``, lists in :func:`~qmae_qiskit.metrics.pauli_labels`' order,
            and whose means are ``None``): ``{"kind", "labels", "bases", "shots_per_image",
            "mean_abs_error", "mean_stderr", "correlation", "slope"}``, the last four of the
            measured features against the exact ones over all images (``slope``: the least-squares
            factor from exact to measured, what noise shrinks).
    """

    record: JobRecord
    images: list[dict[str, Any]]
    mean_fidelity: float | None
    mean_stderr: float | None
    mean_exact: float | None
    png: str | None = None
    mean_keep_fraction: float | None = None
    composite_accuracy: dict[str, Any] | None = None
    features: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON object ``qmae fetch --json`` prints."""
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
            "mean_keep_fraction": self.mean_keep_fraction,
            **({"composite_accuracy": self.composite_accuracy} if self.composite_accuracy is not None else {}),
            **({"features": self.features} if self.features is not None else {}),
            **{
                f"mean_{key}": float(np.mean([r[key] for r in self.images]))
                for key in ("composite_fidelity", "exact_composite_fidelity", "masked_psnr", "exact_masked_psnr")
                if self.images and key in self.images[0]
            },
        }


_CALIBRATIONS: dict[str, tuple[ReadoutCalibration, list[int]]] = {}


def _readout_correction(record: JobRecord) -> Callable[[Counts], tuple[Counts, float]]:
    """The record's mthree correction: from its calibration file, else built from the counts of
    its calibration job (saved with the job's counts), else, for a record copied without either,
    from a calibration run now."""
    if record.record_id not in _CALIBRATIONS:
        model = model_for(record)
        backend = get_backend(record.backend)
        level = record.options.optimization_level
        qubits = measured_qubits(isa_circuit(model, backend, record.variant, optimization_level=level))
        path = calibration_path(record)
        if not path.is_file():
            plan, counts = record.calibration, saved_calibration_counts(record)
            if plan is None or counts is None:
                plan, counts = _calibrate_now(record, backend, qubits)
            ReadoutCalibration.from_counts(backend, plan, counts, path)
        _CALIBRATIONS[record.record_id] = (ReadoutCalibration(path), qubits)
    calibration, qubits = _CALIBRATIONS[record.record_id]
    return lambda counts: calibration.correct(counts, qubits)


def _calibrate_now(record: JobRecord, backend: Any, qubits: list[int]) -> tuple[dict[str, Any], list[dict[str, int]]]:
    """Run mthree's calibration circuits for ``qubits`` now (through the executor Sampler) and wait."""
    from qiskit_ibm_runtime.executor_sampler import Sampler

    plan = calibration_plan(backend, qubits, shots=record.options.calibration_shots)
    sampler = Sampler(mode=backend)
    if record.local and record.options.seed is not None:
        sampler.options.simulator.seed_simulator = int(record.options.seed)
    result = sampler.run([(c, None, n) for c, n in zip(plan.circuits, plan.circuit_shots)]).result()
    return plan.as_record(), [r.data.c.get_counts() for r in result]


def _fidelity_rows(record: JobRecord, by_scale: Mapping[int, Sequence[Counts]]) -> list[dict[str, Any]]:
    def estimate(counts: Counts) -> Estimate:
        return fidelity_from_counts(counts, variant=record.variant, num_qubits=record.num_qubits)

    full = record.options.cdr_target == "full" and record.training_exact_full is not None
    targets = (record.training_exact_full if full else record.training_exact) if record.training_indices else None
    estimates = mitigated_estimates(
        by_scale,
        len(record.indices),
        estimate=estimate,
        correct=_readout_correction(record) if record.options.readout_mitigation else None,
        extrapolation=record.options.extrapolation,
        cdr_targets=targets,
    )
    embedded = record.exact_embedded or [None] * len(record.indices)
    rows = []
    for i, (index, exact) in enumerate(zip(record.indices, record.exact)):
        f, err = estimates[i]
        raw = estimate(by_scale[1][i])[0]
        rows.append(
            {"index": index, "fidelity": f, "stderr": err, "exact": exact, "raw": raw, "exact_embedded": embedded[i]}
        )
        if record.variant in POSTSELECTED_VARIANTS:  # the shots kept, measured and exact
            rows[-1]["keep_fraction"] = keep_fraction_from_counts(by_scale[1][i], num_qubits=record.num_qubits)
            rows[-1]["exact_keep"] = record.exact_keep[i] if record.exact_keep else None
    return rows


def _pixel_distributions(record: JobRecord, counts: Sequence[Counts]) -> tuple[np.ndarray, list[float]]:
    """Per image the kept shots' outcome frequencies over the ``2**n`` pixels, and the kept fraction."""
    n = record.num_qubits
    distributions, kept = [], []
    for c in counts:
        p = np.zeros(2**n)
        total = 0.0
        for key, v in c.items():
            bits = key.replace(" ", "")
            total += v
            if "1" not in bits[:-n]:  # post-selected: only the shots whose trash bits (c[n..]) read 0
                p[int(bits[-n:], 2)] += v
        kept.append(p.sum() / total)
        distributions.append(p / max(p.sum(), 1e-300))
    return np.stack(distributions), kept


def _reconstruction_rows(record: JobRecord, counts: Sequence[Counts], png: str) -> list[dict[str, Any]]:
    rows, measured = [], []
    distributions, kept_fractions = _pixel_distributions(record, counts)
    for i, (index, p, kept, exact) in enumerate(zip(record.indices, distributions, kept_fractions, record.exact)):
        measured.append(np.sqrt(p))
        fidelity = float(np.sqrt(p * np.asarray(exact)).sum() ** 2)  # classical fidelity with the exact distribution
        rows.append({"index": index, "fidelity": fidelity, "stderr": None, "exact": 1.0})
        if record.variant != RECONSTRUCTION:
            rows[-1].update(keep_fraction=float(kept), exact_keep=record.exact_keep[i] if record.exact_keep else None)
    originals, masks = record_images(record, model_for(record))
    _composite_columns(rows, np.stack(measured), np.asarray(record.exact), originals, masks)
    _plot(record, np.stack(measured), np.sqrt(np.asarray(record.exact)), originals.numpy(), png)
    return rows


def _composite_columns(
    rows: list[dict[str, Any]], measured: np.ndarray, exact: np.ndarray, originals: Any, masks: Any
) -> None:
    """The composite (visible pixels kept, the measured patch pasted in at the visible-pixel scale)
    per image, from the counts and from the exact distribution: its fidelity with the original
    and the patch's PSNR. Only the patch's values come from the device; the visible ones are known."""
    import torch

    from ..metrics import composite_image, masked_psnr, state_fidelity

    shape = originals.shape
    for name, amplitudes in (("", torch.as_tensor(measured)), ("exact_", torch.as_tensor(np.sqrt(exact)))):
        composite = composite_image(amplitudes.reshape(shape).to(originals.dtype), originals, masks)
        fid = state_fidelity(composite.flatten(1), originals.flatten(1))
        psnr = masked_psnr(composite, originals, masks)
        for row, f, q in zip(rows, fid.tolist(), psnr.tolist()):
            row[f"{name}composite_fidelity"], row[f"{name}masked_psnr"] = f, q


def _feature_rows(record: JobRecord, counts: Sequence[Counts]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per image its features and standard errors from the counts of its bases (readout-corrected
    when the record says so), next to the exact ones; and the summary over all images."""
    from ..metrics import pauli_labels

    bases, kind = record.bases or [], record.options.feature_kind
    correct = _readout_correction(record) if record.options.readout_mitigation else None
    rows, measured, exact = [], [], []
    for i, index in enumerate(record.indices):
        mine = list(counts[i * len(bases) : (i + 1) * len(bases)])
        raw, raw_err = features_from_counts(mine, bases, kind)
        values, err = raw, raw_err
        if correct is not None:
            fixed = [correct(c) for c in mine]
            values, err = features_from_counts(
                [q for q, _ in fixed], bases, kind, overheads=[o for _, o in fixed], shots=[record.shots] * len(bases)
            )
        rows.append(
            {
                "index": index,
                "features": values.tolist(),
                "stderr": err.tolist(),
                "exact": record.exact[i],
                "raw": raw.tolist(),
            }
        )
        measured.append(values)
        exact.append(np.asarray(record.exact[i], dtype=float))
    m, e = np.concatenate(measured), np.concatenate(exact)
    model = model_for(record)
    summary = {
        "kind": kind,
        "labels": pauli_labels(model.num_qubits, model.latent_indices, kind),
        "bases": bases,
        "shots_per_image": record.shots * len(bases),
        "mean_abs_error": float(np.abs(m - e).mean()),
        "mean_stderr": float(np.mean([np.mean(r["stderr"]) for r in rows])),
        "correlation": float(np.corrcoef(m, e)[0, 1]) if m.std() > 0 and e.std() > 0 else 0.0,
        "slope": float((m * e).sum() / max((e * e).sum(), 1e-300)),
    }
    return rows, summary


def score(
    record: JobRecord, by_scale: Mapping[int, Sequence[Counts]], png: str | os.PathLike | None = None
) -> FetchResult:
    """Interpret a job's counts (per ZNE scale, per binding) with the mitigation its record names."""
    if record.variant == FEATURES:
        rows, summary = _feature_rows(record, by_scale[1])
        return FetchResult(record, rows, None, None, None, features=summary)
    figure = None
    if record.variant not in RECONSTRUCTION_VARIANTS:
        rows = _fidelity_rows(record, by_scale)
    else:
        figure = str(png or jobs_dir() / f"{record.record_id}.png")
        rows = _reconstruction_rows(record, by_scale[1], figure)
    fids = [r["fidelity"] for r in rows]
    errs = [r["stderr"] or 0.0 for r in rows]
    kept = [r["keep_fraction"] for r in rows if "keep_fraction" in r]
    return FetchResult(
        record,
        rows,
        float(np.mean(fids)),
        float(np.sqrt(np.sum(np.square(errs))) / len(errs)),
        float(np.mean([r["exact"] for r in rows])),
        figure,
        float(np.mean(kept)) if kept else None,
    )


def composite_accuracy(record: JobRecord, counts: Sequence[Counts]) -> dict[str, Any]:
    """ResNet18 accuracy of a reconstruction job's composites (the known visible pixels, the patch
    from the kept shots' pixel frequencies at the visible-pixel scale), next to the exact
    composites' and the mean-image fill's on the same images, with the classifier ``qmae evaluate``
    uses (the run's training split; trained and cached the first time).

    Raises:
        JobError: not a reconstruction job, or a dataset without labels.
    """
    import torch

    from ..classifier import cached_classifier, predict
    from ..metrics import composite_image
    from ..runs import data_for_run
    from .records import _split_of

    if record.variant not in RECONSTRUCTION_VARIANTS:
        raise JobError(f"job {record.record_id} sampled fidelities, not images: accuracy needs --reconstruct")
    data = _split_of(record, record.split)
    if data.labels is None:
        raise JobError(f"the images of job {record.record_id} have no labels: no accuracy")
    labels = data.labels[record.indices]
    originals, masks = record_images(record, model_for(record))
    train = data_for_run(record.run_dir, split="train", data_dir=record.data_dir, check=False)
    classifier, path = cached_classifier(train, progress=False)
    distributions, _ = _pixel_distributions(record, counts)
    out: dict[str, Any] = {}
    for name, probabilities in (("device", distributions), ("exact", np.asarray(record.exact))):
        amplitudes = torch.as_tensor(np.sqrt(probabilities)).reshape(originals.shape).to(originals.dtype)
        composite = composite_image(amplitudes, originals, masks)
        out[name] = float((predict(classifier, composite) == labels).double().mean())
    mean_fill = torch.where(masks, train.images.mean(0).to(originals.dtype), originals)
    out["mean_image_fill"] = float((predict(classifier, mean_fill) == labels).double().mean())
    out["original"] = float((predict(classifier, originals) == labels).double().mean())
    out.update(images=len(labels), classifier=path.name)
    return out


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
    record = copy.deepcopy(load_record(job_or_record_id))
    if not counts_path(record).is_file():
        raise JobError(f"job {job_or_record_id} has no counts yet; `qmae fetch {job_or_record_id}` first")
    by_scale = saved_counts(record)
    record.options = record.options.replace(readout_mitigation=record.options.readout_mitigation and readout_mitigation)
    if not zne:
        by_scale = {1: by_scale[1]}
    if not cdr:
        record.training_indices = None
    if cdr_target is not None:
        record.options = record.options.replace(cdr_target=cdr_target)
    return score(record, by_scale)


PLOTTED_IMAGES = 12  # columns of a job's reconstruction figure: the first images, not a 200-column strip


def _plot(record: JobRecord, measured: np.ndarray, exact: np.ndarray, originals: np.ndarray, path: str) -> None:
    side = int(round(np.sqrt(measured.shape[1])))
    shown = min(len(measured), PLOTTED_IMAGES)
    fig, axes = new_figure(3, shown, figsize=(1.6 * shown, 5.0), squeeze=False)
    for i in range(shown):
        for row, img in enumerate((measured[i], exact[i], originals[i].reshape(-1))):
            axes[row, i].imshow(img.reshape(side, side), cmap="gray")
            axes[row, i].axis("off")
    first = f", the first {shown} of {len(measured)} images" if shown < len(measured) else ""
    axes[0, 0].set_title(f"{record.backend}, {record.shots} shots{first}", loc="left", fontsize=8)
    axes[1, 0].set_title("exact simulator", loc="left", fontsize=8)
    axes[2, 0].set_title("original", loc="left", fontsize=8)
    save_figure(fig, path, dpi=100)
