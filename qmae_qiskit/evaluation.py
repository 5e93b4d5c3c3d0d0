"""Every number of the paper's Table 1 for one trained model on held-out images.

``evaluate_run`` is what ``qmae evaluate`` prints: the fidelity (the model's own SWAP-test value),
cosine similarity, SSIM (scikit-image, and torchmetrics' defaults), PSNR and the ResNet18 accuracy
on the reconstructions, each a mean with its standard error, with the inference-time ``visible``
scaling; the ``oracle_*`` keys repeat the image metrics with the oracle scaling, and the
``postselected_*`` keys with the trash measured and post-selected on 0 instead of reset (not the
paper's procedure; never mixed into the main keys).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch

from .metrics import image_metrics, mean_stderr, scale_reconstruction
from .model import QMAE, load_model
from .runs import data_for_run, saved_evaluation_masks

__all__ = ["EvalResult", "evaluate", "evaluate_images", "evaluate_run"]


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


@torch.no_grad()
def evaluate_images(
    model: QMAE,
    images: torch.Tensor,
    masks: torch.Tensor,
    *,
    labels: torch.Tensor | None = None,
    classifier: torch.nn.Module | None = None,
    batch_size: int = 2000,
) -> dict[str, Any]:
    """All metrics for ``images`` under ``masks``.

    Returns:
        A flat dict: ``fidelity``, ``cosine_similarity``, ``ssim``, ``ssim_torchmetrics``, ``psnr``,
        ``accuracy`` (when a classifier and labels are given), each with ``*_stderr``, and the
        ``oracle_*`` image metrics; plus ``images``.
    """
    fids, recons, posts = [], [], []
    for start in range(0, len(images), batch_size):
        x, m = images[start : start + batch_size], masks[start : start + batch_size]
        fids.append(model.fidelity(x, m).double())
        recons.append(model.reconstruct(x, m).detach())
        posts.append(model.reconstruct(x, m, postselect=True).detach())
    fidelity, recon, post = torch.cat(fids), torch.cat(recons), torch.cat(posts)
    out: dict[str, Any] = {"images": len(images)}
    out["fidelity"], out["fidelity_stderr"] = mean_stderr(fidelity)
    scaled = scale_reconstruction(recon, images, masks, method="visible")
    for name, values in image_metrics(scaled, images).items():
        out[name], out[f"{name}_stderr"] = mean_stderr(values)
    # not the paper's procedure: trash measured and post-selected on 0 instead of reset (own keys)
    post_scaled = scale_reconstruction(post, images, masks, method="visible")
    for name, values in image_metrics(post_scaled, images, torchmetrics_ssim=False).items():
        out[f"postselected_{name}"], out[f"postselected_{name}_stderr"] = mean_stderr(values)
    oracle = scale_reconstruction(recon, images, masks, method="oracle")
    for name, values in image_metrics(oracle, images, torchmetrics_ssim=False).items():
        out[f"oracle_{name}"], out[f"oracle_{name}_stderr"] = mean_stderr(values)
    if classifier is not None and labels is not None:
        from .classifier import accuracy

        out["accuracy"], out["accuracy_stderr"] = accuracy(classifier, scaled, labels)
        out["oracle_accuracy"], out["oracle_accuracy_stderr"] = accuracy(classifier, oracle, labels)
        out["postselected_accuracy"], out["postselected_accuracy_stderr"] = accuracy(classifier, post_scaled, labels)
    return out


def evaluate_run(
    run_dir: str | os.PathLike,
    *,
    split: str = "test",
    data_dir: str | None = None,
    limit: int | None = None,
    with_accuracy: bool = True,
    progress: bool = True,
    embedding_layers: int | None = None,
) -> dict[str, Any]:
    """:func:`evaluate_images` for a run directory, with its saved evaluation masks.

    The classifier is trained on the run's training source the first time (cached afterwards).
    ``embedding_layers`` evaluates with the approximate ladder embedding that hardware runs
    (:mod:`qmae_qiskit.approx_embedding`) instead of the run's own embedding.
    """
    model = load_model(run_dir)
    if embedding_layers is not None:
        model.set_embedding(embedding_layers)
    data = data_for_run(run_dir, split=split, data_dir=data_dir, limit=limit)
    masks = saved_evaluation_masks(run_dir, model, len(data.images))
    classifier = None
    if with_accuracy:
        from .classifier import cached_classifier

        classifier, _ = cached_classifier(data_for_run(run_dir, split="train", data_dir=data_dir), progress=progress)
    out = evaluate_images(model, data.images, masks, labels=data.labels, classifier=classifier)
    out.update(split=split, source=data.source, embedding_layers=model.embedding_layers)
    return out
