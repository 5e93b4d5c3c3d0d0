"""A run directory on disk, beyond its checkpoint: evaluation masks, the data it trained on, versions.

A run directory (written by ``qmae train``) holds ``config.json`` (every option, the architecture,
the data source, package versions), ``checkpoint.pt`` (:mod:`.checkpoint` reads and writes both),
``metrics.jsonl`` (one line per step), ``eval_masks.npz`` (the evaluation masks, drawn once and
saved, so that every model of one architecture is scored on the same masks) and ``loss.png``.
Evaluation, reproduction, the runtime and the benchmarks read runs through this module; none of
them imports the training loop.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import checkpoint as ckpt
from .data import EMBEDDED, ENV_DATA_DIR, MNIST, DataError, ImageSet, load_mnist, locate_mnist
from .masking import mask_patches, masks_from_patches

if TYPE_CHECKING:
    from .model import QMAE

__all__ = [
    "EVAL_SEED",
    "versions",
    "evaluation_masks",
    "saved_evaluation_masks",
    "save_masks",
    "load_masks",
    "data_for_run",
]

EVAL_SEED = 1234  # the evaluation masks' seed: one set of masks per architecture, whatever the model

_VERSIONED = (
    "qmae-qiskit",
    "qiskit",
    "qiskit-aer",
    "qiskit-machine-learning",
    "qiskit-ibm-runtime",
    "torch",
    "torchvision",
)


def versions() -> dict[str, str]:
    """Python's and the installed packages' versions, as recorded in ``config.json`` and results."""
    out = {"python": platform.python_version()}
    for pkg in _VERSIONED:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def evaluation_masks(count: int, model: QMAE, *, seed: int = EVAL_SEED) -> torch.Tensor:
    """``(count, H, W)`` evaluation masks drawn from ``seed``: identical for QMAE and QAE of one
    architecture (they depend on the image size, patch size and mask ratio only)."""
    return model.random_mask(count, generator=torch.Generator().manual_seed(seed)).cpu()


def save_masks(path: str | os.PathLike, masks: torch.Tensor, patch_size: tuple[int, int]) -> None:
    """Atomically save masks as their masked patch indices (a few KB for 10,000 images)."""
    idx = mask_patches(masks, patch_size).numpy().astype(np.uint8)
    data = dict(patches=idx, image_size=masks.shape[-1], patch=np.array(patch_size))
    ckpt.atomic_write(path, lambda fh: np.savez_compressed(fh, **data))


def load_masks(path: str | os.PathLike, model: QMAE) -> torch.Tensor:
    """Masks saved by :func:`save_masks`, as ``(N, H, W)`` bool for ``model``'s architecture."""
    with np.load(path) as data:
        idx = torch.as_tensor(data["patches"].astype(np.int64))
    return masks_from_patches(idx, model.image_size, model.patch_size)


def saved_evaluation_masks(run_dir: str | os.PathLike, model: QMAE, count: int) -> torch.Tensor:
    """The run's evaluation masks for ``count`` images (drawn and saved on first use)."""
    path = Path(run_dir) / ckpt.EVAL_MASKS
    if path.is_file():
        masks = load_masks(path, model)
        if len(masks) >= count:
            return masks[:count]
    masks = evaluation_masks(count, model)
    save_masks(path, masks, model.patch_size)
    return masks


def _mnist_root(saved: dict[str, Any], source: str) -> str | None:
    """Where a run's MNIST files are on this machine: ``$QMAE_DATA_DIR`` or the download cache,
    else the directory the run was trained from if it exists here (its ``--data-dir`` as given,
    or an absolute path recorded by older versions)."""
    found = locate_mnist()
    if found is not None:
        return str(found)
    candidates = [saved.get("options", {}).get("data_dir"), source]
    return next((str(c) for c in candidates if c and c not in (MNIST, EMBEDDED) and Path(c).is_dir()), None)


def data_for_run(
    run_dir: str | os.PathLike, *, split: str = "test", data_dir: str | None = None, limit: int | None = None
) -> ImageSet:
    """Images of ``split`` for a run: from ``data_dir`` if given, else the dataset it trained on.

    ``split`` is ``"train"``, ``"test"``, or ``"holdout"``: the training images the run kept out
    of training (``--holdout``).

    A run records *which* data it trained on (``"mnist"`` or ``"embedded"``), not where the files
    were on the machine that trained it; MNIST is found here by :func:`_mnist_root`.

    Raises:
        DataError: the run trained on MNIST and no copy of it is found here.
    """
    saved = ckpt.load_config(run_dir)
    opts = saved["options"]
    if split == "holdout":  # the training images the run left out (--holdout)
        if not opts.get("holdout"):
            raise DataError(f"{run_dir} held no training images out (train it with --holdout N)")
        data = data_for_run(run_dir, split="train", data_dir=data_dir, limit=opts.get("limit"))
        held = data._replace(images=data.images[-opts["holdout"] :], labels=data.labels[-opts["holdout"] :])
        return held if limit is None else held._replace(images=held.images[:limit], labels=held.labels[:limit])
    source = str(saved.get("data_source") or EMBEDDED)
    if data_dir is None and source == EMBEDDED:
        return load_mnist(split, image_size=opts["image_size"], limit=limit)
    root = data_dir or _mnist_root(saved, source.removeprefix("download:"))
    if root is None and not (opts.get("download") or source.startswith("download:")):
        raise DataError(
            f"{run_dir} was trained on MNIST, which is not on this machine: pass --data-dir DIR (torchvision's MNIST "
            f"layout), set {ENV_DATA_DIR}, or download it once with --download"
        )
    return load_mnist(split, root=root, download=root is None, image_size=opts["image_size"], limit=limit)
