"""The linear probe scored on features a device measured (issue 23): ``qmae probe RUN --job ID``.

:func:`~qmae_qiskit.probe` fits its probes on exact latent features; :func:`probe_job` fits the
same probe on the exact features of the training images and scores it on the features a
``qmae submit RUN --features`` job measured (:mod:`qmae_qiskit.circuits.features`), next to the
exact features of the same test images. It sits in the runtime, above the probe, because it reads
job records: the core never imports the runtime.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..metrics import paired_interval
from ..probe import batched_features, binomial_interval, fit_probe
from .retrieval import fetch

__all__ = ["DeviceProbe", "probe_job"]


@dataclass(frozen=True)
class DeviceProbe:
    """The probe scored on features measured by a device (a ``qmae submit --features`` job).

    Attributes:
        record_id, backend: the job.
        kind: its Pauli observables.
        masked: whether it measured the masked images (else the clean ones).
        images: test images in the job (the first of the split).
        shots_per_image, total_shots: shots per image (every basis) and in the whole job.
        train_images: training images the probe was fitted on (exact features, as :func:`probe`).
        exact_accuracy, exact_interval: the probe on the exact features of the job's images.
        device_accuracy, device_interval: on the device's features, standardized as the training
            features were.
        restandardized_accuracy, restandardized_interval: on the device's features standardized
            by their own mean and spread over the job's images (no labels, no exact values used):
            what undoes a uniform shrinking by noise.
        device_minus_exact, restandardized_minus_exact: paired 95 % intervals over the images.
        mean_abs_error, slope, correlation: the measured features against the exact ones
            (:attr:`~qmae_qiskit.runtime.FetchResult.features`).
    """

    record_id: str
    backend: str
    kind: str
    masked: bool
    images: int
    shots_per_image: int
    total_shots: int
    train_images: int
    exact_accuracy: float
    exact_interval: tuple[float, float]
    device_accuracy: float
    device_interval: tuple[float, float]
    restandardized_accuracy: float
    restandardized_interval: tuple[float, float]
    device_minus_exact: dict[str, float]
    restandardized_minus_exact: dict[str, float]
    mean_abs_error: float
    slope: float
    correlation: float

    def as_json(self) -> dict[str, Any]:
        """What ``qmae probe RUN --job ID --json`` prints."""
        return asdict(self)


def probe_job(
    job_or_record_id: str,
    *,
    data_dir: str | None = None,
    train_limit: int | None = None,
    seed: int = 0,
) -> DeviceProbe:
    """The linear probe of :func:`probe`, fitted on the exact latent features of the training
    images, scored on the features a device measured for a ``qmae submit RUN --features`` job,
    next to the same probe on the exact features of the same images.

    Args:
        job_or_record_id: the features job (fetched first: a local job's counts are simulated
            now if absent).
        data_dir: MNIST in torchvision's layout (default: the run's own source).
        train_limit: fit on the first N training images, class-balanced (default: all).
        seed: seeds the training images' masks (masked jobs).

    Returns:
        A :class:`DeviceProbe`.

    Raises:
        ValueError: not a features job, or an unlabelled dataset.
        JobError: an unknown, failed or unfinished job.
    """
    from ..model import load_model
    from ..runs import data_for_run

    result = fetch(job_or_record_id)
    record = result.record
    if result.features is None:
        raise ValueError(
            f"job {job_or_record_id} sampled {record.variant} circuits, not features: submit with --features"
        )
    kind, masked = result.features["kind"], any(record.masks)
    model = load_model(record.run_dir)
    data_dir = data_dir or record.data_dir  # else the run's own source
    train = data_for_run(record.run_dir, split="train", data_dir=data_dir, limit=train_limit, check=False)
    test = data_for_run(record.run_dir, split="test", data_dir=data_dir, check=False)
    if train.labels is None or test.labels is None:
        raise ValueError(f"{record.run_dir}'s dataset is unlabelled: a probe needs the classes")
    train_masks = (
        model.random_mask(len(train.images), generator=torch.Generator().manual_seed(seed)) if masked else None
    )
    x_train = batched_features(lambda x, m: model.features(x, m, kind=kind), train.images, train_masks).double().numpy()
    pipeline = fit_probe(x_train, train.labels.numpy(), seed)
    y = test.labels[record.indices].numpy()
    exact = np.array([row["exact"] for row in result.images])
    device = np.array([row["features"] for row in result.images])
    # the device's features standardized on themselves, then mapped onto the training features' scale
    spread = device.std(0)
    restandardized = (device - device.mean(0)) / np.where(spread > 0, spread, 1.0) * x_train.std(0) + x_train.mean(0)
    hits = {
        name: (pipeline.predict(x) == y).astype(np.float64)
        for name, x in (("exact", exact), ("device", device), ("restandardized", restandardized))
    }

    def interval(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
        i = paired_interval(a, b)
        return {"mean": i.mean, "low": i.low, "high": i.high}

    def accuracy(name: str) -> tuple[float, tuple[float, float]]:
        p = float(hits[name].mean())
        return p, binomial_interval(p, len(y))

    return DeviceProbe(
        record.record_id,
        record.backend,
        kind,
        masked,
        len(y),
        result.features["shots_per_image"],
        result.features["shots_per_image"] * len(y),
        len(train.images),
        *accuracy("exact"),
        *accuracy("device"),
        *accuracy("restandardized"),
        interval(hits["device"], hits["exact"]),
        interval(hits["restandardized"], hits["exact"]),
        result.features["mean_abs_error"],
        result.features["slope"],
        result.features["correlation"],
    )
