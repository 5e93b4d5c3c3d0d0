"""Linear probing: how linearly separable the encoder's latent state makes the digits.

Classical masked autoencoders are judged first by their encoder's features (He et al.: a linear
classifier on frozen features). A quantum encoder's features are its latent state; here they are
the expectation values of the 1- and 2-local Pauli observables on the latent qubits of ``U |psi>``
(:meth:`~qmae_qiskit.QMAE.features`). :func:`probe` fits scikit-learn's multinomial logistic
regression (features standardized, the regularisation ``C`` chosen by 3-fold cross-validation on the
training split) on frozen features of the training images, clean and masked, and scores it once on
the test images, next to the same probe on:

- ``untrained_encoder``: the same architecture with its initial (random) weights and token;
- ``input_state``: the same observables on the input state, before any encoder;
- ``pixels``: the (filled) pixels themselves;
- ``pca``: the pixels' principal components, as many as the latent features (at most the pixels).

Masked rows use the model's own fill (its token) for every feature kind, the run's saved
evaluation masks for the test images and seeded random masks for the training images.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from .metrics import paired_interval, pauli_expectations

__all__ = ["FEATURE_SETS", "ProbeRow", "ProbeResult", "probe"]

FEATURE_SETS = ("latent", "untrained_encoder", "input_state", "pixels", "pca")
CS = (0.01, 0.1, 1.0, 10.0)  # the inverse regularisation strengths the cross-validation chooses from
CHUNK = 1024  # images per feature batch (bounds the memory of 2^n-amplitude states)


@dataclass(frozen=True)
class ProbeRow:
    """One feature set's probe.

    Attributes:
        name: one of :data:`FEATURE_SETS`.
        features: how many numbers per image.
        clean_accuracy, masked_accuracy: test accuracy on clean and on masked images.
        clean_interval, masked_interval: their 95 % intervals (binomial, over the test images).
        clean_c, masked_c: the ``C`` the cross-validation chose.
    """

    name: str
    features: int
    clean_accuracy: float
    clean_interval: tuple[float, float]
    masked_accuracy: float
    masked_interval: tuple[float, float]
    clean_c: float
    masked_c: float


@dataclass(frozen=True)
class ProbeResult:
    """A run's probe table.

    Attributes:
        run_dir: the run.
        kind: the Pauli observables (``"pauli2"`` or ``"pauli1"``).
        train_images, test_images: how many images fitted and scored the probes.
        rows: one :class:`ProbeRow` per feature set, in :data:`FEATURE_SETS` order.
        comparisons: paired 95 % intervals (over the test images) of the latent features' accuracy
            minus the untrained encoder's and the input state's, clean and masked.
    """

    run_dir: str
    kind: str
    train_images: int
    test_images: int
    rows: list[ProbeRow]
    comparisons: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """What ``qmae probe --json`` prints."""
        return {**asdict(self), "rows": [asdict(r) for r in self.rows]}

    def table(self) -> str:
        """The rows as a Markdown table."""
        lines = [
            "| features | count | clean accuracy | masked accuracy |",
            "|---|---|---|---|",
        ]

        def cell(accuracy: float, interval: tuple[float, float]) -> str:
            return f"{100 * accuracy:.2f} % [{100 * interval[0]:.2f}, {100 * interval[1]:.2f}]"

        for r in self.rows:
            clean, masked = cell(r.clean_accuracy, r.clean_interval), cell(r.masked_accuracy, r.masked_interval)
            lines.append(f"| {r.name} | {r.features} | {clean} | {masked} |")
        return "\n".join(lines)


def probe(
    run_dir: str | os.PathLike,
    *,
    data_dir: str | None = None,
    limit: int | None = None,
    train_limit: int | None = None,
    kind: str = "pauli2",
    seed: int = 0,
) -> ProbeResult:
    """Linear probes of a run's latent features and the baselines (see the module docstring).

    Args:
        run_dir: a trained run (the exact engine computes its features).
        data_dir: MNIST in torchvision's layout (default: the run's own source).
        limit: score on the first N test images (default: all).
        train_limit: fit on the first N training images, class-balanced (default: all).
        kind: ``"pauli2"`` (1- and 2-local observables, default) or ``"pauli1"``.
        seed: seeds the training images' masks and the untrained encoder's weights.

    Returns:
        A :class:`ProbeResult`.

    Raises:
        ValueError: an unlabelled dataset, too few images of a class for the cross-validation, or
            a bad ``kind``.
    """
    from sklearn.decomposition import PCA

    from .model import load_model
    from .runs import data_for_run, saved_evaluation_masks

    model = load_model(run_dir)
    if model.condition == "position":  # the encoder depends on the patch: clean images have no encoder
        raise ValueError("a condition='position' run has one encoder per masked patch: probe an unconditioned run")
    train = data_for_run(run_dir, split="train", data_dir=data_dir, limit=train_limit, check=False)
    test = data_for_run(run_dir, split="test", data_dir=data_dir, limit=limit)
    if train.labels is None or test.labels is None:
        raise ValueError(f"{run_dir}'s dataset is unlabelled: a probe needs the classes")
    counts = torch.bincount(train.labels)
    if int(counts[counts > 0].min()) < 3:
        raise ValueError(
            "every class needs at least 3 training images for the 3-fold cross-validation; raise --train-limit"
        )
    train_masks = model.random_mask(len(train.images), generator=torch.Generator().manual_seed(seed))
    test_masks = saved_evaluation_masks(run_dir, model, len(test.images))
    untrained = type(model)(model.config, seed=seed + 1)
    untrained.set_embedding(model.embedding_layers)

    def input_state(images: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        vectors = (model.fill(images, mask) if mask is not None else images).flatten(1)
        with torch.no_grad():
            psi = model.embed(vectors).double()
            psi = psi / psi.norm(dim=1, keepdim=True).clamp_min(1e-300)
        return pauli_expectations(psi, model.num_qubits, model.latent_indices, kind).float()

    def pixels(images: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            return (model.fill(images, mask) if mask is not None else images).flatten(1).float()

    extractors: dict[str, Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]] = {
        "latent": lambda x, m: model.features(x, m, kind=kind),
        "untrained_encoder": lambda x, m: untrained.features(x, m, kind=kind),
        "input_state": input_state,
        "pixels": pixels,
    }
    y_train, y_test = train.labels.numpy(), test.labels.numpy()
    rows, correct = [], {}
    width = None
    for name in FEATURE_SETS:
        accuracies, intervals, chosen = [], [], []
        for condition, (tr_mask, te_mask) in (("clean", (None, None)), ("masked", (train_masks, test_masks))):
            if name == "pca":
                x_train = batched_features(pixels, train.images, tr_mask).numpy()
                x_test = batched_features(pixels, test.images, te_mask).numpy()
                components = min(width or 1, x_train.shape[1], len(x_train))  # no more than the pixels
                reducer = PCA(n_components=components, random_state=seed).fit(x_train)
                x_train, x_test = reducer.transform(x_train), reducer.transform(x_test)
            else:
                x_train = batched_features(extractors[name], train.images, tr_mask).numpy()
                x_test = batched_features(extractors[name], test.images, te_mask).numpy()
            if name == "latent":
                width = x_train.shape[1]
            hits, c = _fit_and_score(x_train, y_train, x_test, y_test, seed)
            correct[(name, condition)] = hits
            accuracy = float(hits.mean())
            accuracies.append(accuracy)
            intervals.append(binomial_interval(accuracy, len(hits)))
            chosen.append(c)
        rows.append(
            ProbeRow(name, int(x_train.shape[1]), accuracies[0], intervals[0], accuracies[1], intervals[1], *chosen)
        )
    comparisons = {}
    for other in ("untrained_encoder", "input_state"):
        for condition in ("clean", "masked"):
            interval = paired_interval(correct[("latent", condition)], correct[(other, condition)])
            comparisons[f"latent_minus_{other}_{condition}"] = {
                "mean": interval.mean,
                "low": interval.low,
                "high": interval.high,
            }
    return ProbeResult(str(run_dir), kind, len(train.images), len(test.images), rows, comparisons)


def batched_features(
    extract: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], images: torch.Tensor, mask: Any
) -> torch.Tensor:
    parts = []
    for start in range(0, len(images), CHUNK):
        part_mask = None if mask is None else mask[start : start + CHUNK]
        parts.append(extract(images[start : start + CHUNK], part_mask))
    return torch.cat(parts)


def _fit_and_score(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, seed: int
) -> tuple[np.ndarray, float]:
    """Standardize, choose ``C`` by 3-fold cross-validation, refit, and return which test images
    it classifies right, with the ``C`` chosen."""
    pipeline = fit_probe(x_train, y_train, seed)
    hits = (pipeline.predict(x_test) == y_test).astype(np.float64)
    return hits, float(np.atleast_1d(pipeline[-1].C_)[0])


def fit_probe(x_train: np.ndarray, y_train: np.ndarray, seed: int) -> Any:
    """The probe: standardized features, multinomial logistic regression, ``C`` from :data:`CS` by
    3-fold cross-validation on the training images (scikit-learn's pipeline, fitted)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    options: dict[str, Any] = dict(Cs=list(CS), cv=3, max_iter=500, random_state=seed, scoring="accuracy")
    accepted = inspect.signature(LogisticRegressionCV).parameters
    if "l1_ratios" in accepted:  # scikit-learn >= 1.8 spells the L2 penalty this way
        options["l1_ratios"] = (0.0,)
    if "use_legacy_attributes" in accepted:
        options["use_legacy_attributes"] = False
    classifier = LogisticRegressionCV(**options)
    return make_pipeline(StandardScaler(), classifier).fit(x_train, y_train)


def binomial_interval(p: float, n: int) -> tuple[float, float]:
    half = 1.96 * (p * (1 - p) / max(n, 1)) ** 0.5
    return max(0.0, p - half), min(1.0, p + half)
