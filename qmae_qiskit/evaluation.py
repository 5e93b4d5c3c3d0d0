"""Every number of the paper's Table 1, and the inpainting metrics, for one trained model.

``evaluate_run`` is what ``qmae evaluate`` prints: the fidelity (the model's own: the SWAP-test
value with the trash reset, or the fidelity of the kept shots for a post-selected model), cosine
similarity, SSIM (scikit-image, and torchmetrics' defaults), PSNR and the ResNet18 accuracy on the
reconstructions, each a mean with its standard error, with the inference-time ``visible`` scaling.

A masked autoencoder exists to fill in what was masked, so every score sits next to what passing
the input through would score (``input_fidelity``, ``fidelity_gain``, the ``passthrough`` rows for
zeros, the learned token and the mean training image on the same masks), and the metrics that
look only at the masked pixels (``masked_psnr``, ``masked_cosine_similarity``). The ``composite_*``
keys score the *composite* (the visible pixels kept, the model's patch pasted in), how classical
MAEs present inpainting; the ``linear_fill`` pass-through row is the classical anchor (a ridge
regression from the visible pixels to the patch, :mod:`qmae_qiskit.linear_fill`). The ``oracle_*``
keys repeat the image metrics with the oracle scaling; the other trash procedure has its own keys
(``postselected_*`` or ``reset_*``), never mixed into the main ones.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .linear_fill import LinearFill, fit_linear_fill
from .masking import single_patch_positions
from .metrics import MetricSummary, composite_image, image_metrics, mean_stderr, scale_reconstruction, state_fidelity
from .model import QMAE, load_model
from .results import EvalReport, Metrics, PassthroughReport
from .runs import data_for_run, saved_evaluation_masks

__all__ = [
    "EvalReport",
    "EvalResult",
    "PassthroughReport",
    "evaluate",
    "evaluate_images",
    "evaluate_run",
    "linear_fill_for",
    "passthrough",
    "passthrough_fills",
]


@dataclass(frozen=True)
class EvalResult:
    """Mean fidelity over held-out images with its standard error."""

    fidelity: float
    fidelity_stderr: float
    images: int


@torch.no_grad()
def evaluate(model: QMAE, images: torch.Tensor, masks: torch.Tensor, *, batch_size: int = 1000) -> EvalResult:
    """Mean fidelity (and its standard error) of ``model`` on ``images`` with ``masks``: the quick
    score training prints after each epoch (:func:`evaluate_images` computes every metric)."""
    dev = model.theta.device
    values = torch.cat(
        [
            model.fidelity(images[i : i + batch_size].to(dev), masks[i : i + batch_size].to(dev)).cpu()
            for i in range(0, len(images), batch_size)
        ]
    )
    stderr = values.std().item() / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return EvalResult(values.mean().item(), stderr, len(values))


def _summaries(values: Mapping[str, torch.Tensor]) -> dict[str, MetricSummary]:
    return {name: mean_stderr(v) for name, v in values.items()}


def _accuracy(
    classifier: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor
) -> tuple[MetricSummary, torch.Tensor]:
    """The classifier's accuracy (binomial standard error) and the per-image correctness."""
    from .classifier import predict

    correct = (predict(classifier, images) == labels).double()
    mean = correct.mean().item()
    return MetricSummary(mean, (mean * (1 - mean) / max(len(correct), 1)) ** 0.5), correct


@torch.no_grad()
def passthrough(
    images: torch.Tensor,
    masks: torch.Tensor,
    fill: torch.Tensor,
    *,
    labels: torch.Tensor | None = None,
    classifier: torch.nn.Module | None = None,
    with_ssim: bool = True,
    per_image: bool = False,
) -> PassthroughReport:
    """The metrics of a *pass-through*: the filled input itself, scored as if it were the output.

    Any inpainting must beat these on the same masks. The fill is already in pixel units: the
    visible-pixel scaling leaves it unchanged (its visible pixels are the original's).

    Args:
        images: ``(N, H, W)`` originals.
        masks: ``(N, H, W)`` bool.
        fill: ``(N, H, W)`` the images with their masked pixels filled (zeros, a token, ...).

    Returns:
        A :class:`~qmae_qiskit.results.PassthroughReport`: ``fidelity`` (the embeddings' state
        fidelity), the image metrics with ``masked_psnr`` and ``masked_cosine_similarity``, and
        ``accuracy`` when a classifier is given; with ``per_image``, the per-image values
        (``correct`` for the accuracy).
    """
    values = {"fidelity": state_fidelity(fill.flatten(1), images.flatten(1))}
    shown = scale_reconstruction(fill.clamp(min=0), images, masks, method="visible")
    values.update(image_metrics(shown, images, masks, torchmetrics_ssim=False, with_ssim=with_ssim))
    metrics = _summaries(values)
    if classifier is not None and labels is not None:
        metrics["accuracy"], values["correct"] = _accuracy(classifier, shown, labels)
    return PassthroughReport(len(images), Metrics(metrics), values if per_image else None)


@torch.no_grad()
def evaluate_images(
    model: QMAE,
    images: torch.Tensor,
    masks: torch.Tensor,
    *,
    labels: torch.Tensor | None = None,
    classifier: torch.nn.Module | None = None,
    batch_size: int = 2000,
    with_ssim: bool = True,
    per_image: bool = False,
    extras: bool = True,
) -> EvalReport:
    """All metrics for ``images`` under ``masks``, with the model's own procedure (its ``objective``).

    Returns:
        An :class:`~qmae_qiskit.results.EvalReport` (``to_json()``: the flat keys):

        - ``own``: ``fidelity`` (reset: the SWAP-test F; postselect: F of the kept shots),
          ``input_fidelity`` (its filled input's, the pass-through), ``fidelity_gain`` (their
          difference, paired per image); ``keep_probability`` when shots are discarded
          (post-selected, or ancillas), with ``fidelity_per_shot`` = ``fidelity`` x
          ``keep_probability`` (a rejected shot counted as a failure); the image metrics of the
          reconstruction (visible-pixel scaling): ``cosine_similarity``, ``ssim``,
          ``ssim_torchmetrics``, ``psnr``, and on the masked pixels only ``masked_psnr``,
          ``masked_cosine_similarity``; ``accuracy`` and ``input_accuracy`` (the classifier on
          the filled input itself) when a classifier and labels are given;
        - ``composite``: the composite's ``fidelity`` (with the original), image metrics and
          ``accuracy`` (its ``masked_psnr`` is the reconstruction's);
        - ``oracle``: the image metrics with the oracle scaling;
        - ``other``: the other procedure, never mixed into ``own`` (``other_procedure``:
          ``postselected`` for a reset model, with its ``fidelity`` and ``keep_probability``;
          ``reset`` for a post-selected one);
        - with ``per_image``, ``per_image``: the model's per-image values (``correct`` for the
          accuracy), for paired comparisons.

        ``extras=False`` leaves out ``oracle`` and ``other`` (faster, for studies).
    """
    own_ps = model.objective == "postselect"
    parts: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("reset", "joint", "kept", "own_kept", "input", "filled", "recon", "other")
    }
    for start in range(0, len(images), batch_size):
        x, m = images[start : start + batch_size], masks[start : start + batch_size]
        b = model.branches(x, m)
        filled = model.fill(x, m).detach()
        own_kept = model.acceptance(b)
        parts["reset"].append(b.fidelity.double())
        parts["joint"].append(b.joint.double())
        parts["kept"].append(b.kept.double())
        parts["own_kept"].append(
            own_kept.double() if own_kept is not None else torch.ones_like(b.kept, dtype=torch.float64)
        )
        parts["input"].append(state_fidelity(filled.flatten(1), x.flatten(1)))
        parts["filled"].append(filled.clamp(0, 1))
        parts["recon"].append(model.reconstruct(x, m).detach())
        if extras:
            parts["other"].append(model.reconstruct(x, m, postselect=not own_ps).detach())
    reset, joint, kept, input_fid, filled, recon = (
        torch.cat(parts[k]) for k in ("reset", "joint", "kept", "input", "filled", "recon")
    )
    own_kept = torch.cat(parts["own_kept"])
    discards = own_ps or model.ancillas > 0
    postselected = joint / torch.where(kept > 0, kept, torch.ones_like(kept))
    fidelity = postselected if own_ps else reset
    own = _summaries({"fidelity": fidelity, "input_fidelity": input_fid, "fidelity_gain": fidelity - input_fid})
    if discards:
        own.update(_summaries({"keep_probability": own_kept, "fidelity_per_shot": fidelity * own_kept}))
    scaled = scale_reconstruction(recon, images, masks, method="visible")
    own_images = image_metrics(scaled, images, masks, with_ssim=with_ssim)
    own.update(_summaries(own_images))
    composite_image_ = composite_image(recon, images, masks)
    composite_values = {
        "fidelity": state_fidelity(composite_image_.flatten(1), images.flatten(1)),
        **image_metrics(composite_image_, images, masks, torchmetrics_ssim=False, with_ssim=with_ssim),
    }
    composite = _summaries(composite_values)
    values = {"fidelity": fidelity, "input_fidelity": input_fid, "keep_probability": own_kept, **own_images}
    values.update({f"composite_{k}": v for k, v in composite_values.items()})
    other_procedure = "reset" if own_ps else "postselected"
    other: dict[str, MetricSummary] | None = None
    oracle: dict[str, MetricSummary] | None = None
    if extras:  # the other procedure (reset <-> post-selected) in its own group, and the oracle scaling
        other_scaled = scale_reconstruction(torch.cat(parts["other"]), images, masks, method="visible")
        other_images = image_metrics(other_scaled, images, masks, torchmetrics_ssim=False, with_ssim=with_ssim)
        other = _summaries({**other_images, "fidelity": reset if own_ps else postselected})
        if not own_ps:
            other.update(_summaries({"keep_probability": kept}))
        oracle_scaled = scale_reconstruction(recon, images, masks, method="oracle")
        oracle = _summaries(image_metrics(oracle_scaled, images, torchmetrics_ssim=False, with_ssim=with_ssim))
    if classifier is not None and labels is not None:
        own["accuracy"], values["correct"] = _accuracy(classifier, scaled, labels)
        own["input_accuracy"], values["input_correct"] = _accuracy(classifier, filled, labels)
        composite["accuracy"], values["composite_correct"] = _accuracy(classifier, composite_image_, labels)
        if other is not None and oracle is not None:
            oracle["accuracy"], _ = _accuracy(classifier, oracle_scaled, labels)
            other["accuracy"], _ = _accuracy(classifier, other_scaled, labels)
    return EvalReport(
        images=len(images),
        own=Metrics(own),
        composite=Metrics(composite),
        other_procedure=other_procedure,
        oracle=Metrics(oracle) if oracle is not None else None,
        other=Metrics(other) if other is not None else None,
        per_image=values if per_image else None,
    )


def passthrough_fills(
    model: QMAE,
    images: torch.Tensor,
    masks: torch.Tensor,
    mean_image: torch.Tensor,
    linear: LinearFill | None = None,
) -> dict[str, torch.Tensor]:
    """The filled inputs every table compares a model with, on the same masks: ``zeros``, the
    model's learned ``token`` (QMAE only), the per-pixel ``mean_image`` of the training images
    written into the masked pixels, and with ``linear`` (a fitted
    :class:`~qmae_qiskit.linear_fill.LinearFill`) the ``linear_fill``: the classical fills any
    quantum inpainting is measured against."""
    fills = {"zeros": images.masked_fill(masks, 0.0)}
    if model.token is not None:
        fills["token"] = model.fill(images, masks).detach()
    fills["mean_image"] = torch.where(masks, mean_image.to(images.dtype).expand_as(images), images)
    if linear is not None:
        fills["linear_fill"] = linear.fill(images, masks)
    return fills


def linear_fill_for(train_images: torch.Tensor, model: QMAE, masks: torch.Tensor) -> LinearFill | None:
    """The per-position ridge fill fitted on ``train_images`` (alpha chosen on their last 10 %),
    or ``None`` where it is not defined (masks of more than one patch)."""
    if model.num_masked != 1 or (single_patch_positions(masks, model.patch_size) < 0).any():
        return None
    return fit_linear_fill(train_images, patch_size=model.patch_size)


def evaluate_run(
    run_dir: str | os.PathLike,
    *,
    split: str = "test",
    data_dir: str | None = None,
    limit: int | None = None,
    with_accuracy: bool = True,
    progress: bool = True,
    embedding_layers: int | None = None,
) -> EvalReport:
    """:func:`evaluate_images` for a run directory, with its saved evaluation masks, and the
    pass-through rows on the same masks (:func:`passthrough_fills`).

    The classifier is trained on the run's training source the first time (cached afterwards).
    ``embedding_layers`` evaluates with the approximate ladder embedding that hardware runs
    (:mod:`qmae_qiskit.approx_embedding`) instead of the run's own embedding.

    Returns:
        The :class:`~qmae_qiskit.results.EvalReport` of :func:`evaluate_images` with
        ``passthrough`` (a :class:`~qmae_qiskit.results.PassthroughReport` per fill),
        ``objective``, ``split``, ``source``, ``embedding_layers`` (``to_json()``: the flat keys
        ``qmae evaluate --json`` prints).
    """
    model = load_model(run_dir)
    if embedding_layers is not None:
        model.set_embedding(embedding_layers)
    data = data_for_run(run_dir, split=split, data_dir=data_dir, limit=limit)
    masks = saved_evaluation_masks(run_dir, model, len(data.images))
    # the classifier and the mean-image fill come from the training split available here (not part of the run)
    train_images = data_for_run(run_dir, split="train", data_dir=data_dir, check=False)
    classifier = None
    if with_accuracy and train_images.labels is not None and data.labels is not None:  # unlabelled: no accuracy
        from .classifier import cached_classifier

        classifier, _ = cached_classifier(train_images, progress=progress)
    report = evaluate_images(model, data.images, masks, labels=data.labels, classifier=classifier)
    linear = linear_fill_for(train_images.images, model, masks)
    fills = passthrough_fills(model, data.images, masks, train_images.images.mean(0), linear)
    rows = {
        name: passthrough(data.images, masks, fill, labels=data.labels, classifier=classifier)
        for name, fill in fills.items()
    }
    return report.with_run(
        passthrough=rows,
        objective=model.objective,
        split=split,
        source=data.source,
        embedding_layers=model.embedding_layers,
        linear_fill_alpha=linear.alpha if linear is not None else None,
        accuracy_note="unlabelled dataset: no classifier, no accuracy" if data.labels is None else None,
    )
