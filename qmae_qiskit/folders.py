"""A folder of your own image files as a dataset (``--dataset folder:PATH``).

Layout, as torchvision's ``ImageFolder`` has it: class sub-folders give labels
(``PATH/3/img.png`` is class ``"3"``; classes numbered in sorted order); image files directly in
``PATH`` make an unlabelled set. ``PATH/train`` and ``PATH/test``, when both exist, are the
splits; otherwise a seeded, fixed share of the files (``test_fraction``) is the test split.
Files are read in file-name order (then by path), so that a copy of a dataset whose files are
named by index reads back in the original order. Any image Pillow reads, in any size or mode:
converted to grayscale and resized like MNIST.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from .data import DataError, ImageSet, resize

__all__ = ["load_folder", "IMAGE_SUFFIXES", "SPLIT_SEED"]

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
SPLIT_SEED = 0  # the folder's train/test split is recorded by this seed and the file list's fingerprint


def _files(root: Path) -> tuple[list[Path], list[str]]:
    """Image files under ``root`` in reading order, and the class names (``[]``: unlabelled)."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if classes:
        stray = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        if stray:
            raise DataError(
                f"{root} mixes class sub-folders with {len(stray)} image files outside them ({', '.join(stray[:3])}); "
                "put every image in a class folder, or none"
            )
        files = [
            f for c in classes for f in (root / c).rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        ]
    else:
        files = [f for f in root.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    files.sort(key=lambda f: (f.name, str(f.relative_to(root))))
    return files, classes


def _label(root: Path, file: Path, classes: list[str]) -> int:
    return classes.index(file.relative_to(root).parts[0])


def _split(files: list[Path], split: str, test_fraction: float, where: Path) -> list[Path]:
    if not 0 < test_fraction < 1:
        raise DataError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
    count = round(len(files) * test_fraction)
    if count == 0 or count == len(files):
        raise DataError(
            f"{where} has {len(files)} image(s): a test fraction of {test_fraction:g} leaves an empty "
            f"{'test' if count == 0 else 'training'} split; add images, change --test-fraction, or make "
            f"{where}/train and {where}/test"
        )
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(SPLIT_SEED))
    chosen = set(order[:count].tolist())
    return [f for i, f in enumerate(files) if (i in chosen) == (split == "test")]


def _gray(img) -> np.ndarray:
    """Grayscale pixels of a Pillow image with their depth kept: 8-bit as ``uint8``; 16-bit and
    32-bit integer images as floats in [0, 1] (divided by 65535, not clipped to 255: a 16-bit PNG
    converted to 8-bit would read every pixel as 0 or 1); float images as they are when in [0, 1].

    Raises:
        ValueError: a float or 32-bit image whose values are outside what its mode can mean.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        pixels = np.asarray(img, dtype=np.float64)
        if pixels.min() < 0 or pixels.max() > 65535:
            raise ValueError(f"integer pixels outside 0..65535 (mode {img.mode})")
        return (pixels / 65535.0).astype(np.float32)
    if img.mode == "F":
        pixels = np.asarray(img, dtype=np.float64)
        if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1:
            raise ValueError("float pixels must be finite and in [0, 1]")
        return pixels.astype(np.float32)
    return np.asarray(img.convert("L"), dtype=np.uint8)


def load_folder(
    path: str, split: str, *, image_size: int, test_fraction: float = 0.2, skip_unreadable: bool = False
) -> ImageSet:
    """The ``split`` of the image folder ``path`` (see the module docstring).

    Raises:
        DataError: no such directory, no image files, files Pillow cannot read (unless
            ``skip_unreadable``), a mixed layout, or an empty split.
    """
    from PIL import Image, UnidentifiedImageError

    base = Path(path).expanduser()
    if not base.is_dir():
        raise DataError(f"--dataset folder:{path}: no such directory; give a directory of image files")
    presplit = (base / "train").is_dir() and (base / "test").is_dir()
    root = base / split if presplit else base
    files, classes = _files(root)
    if not files:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise DataError(f"{root} holds no image files ({suffixes}); point --dataset folder: at a directory of images")
    if not presplit:
        files = _split(files, split, test_fraction, base)
    images, labels, unreadable = [], [], []
    digest = hashlib.sha256()
    for file in files:
        try:
            with Image.open(file) as img:
                pixels = _gray(img)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            unreadable.append((file, exc))
            continue
        digest.update(str(file.relative_to(base)).encode() + b"\0" + pixels.tobytes())
        image = resize(torch.from_numpy(pixels.copy())[None], image_size)[0]
        if not image.any():
            raise DataError(f"{file} is all black: an amplitude embedding needs a lit pixel; remove it from {root}")
        images.append(image)
        if classes:
            labels.append(_label(root, file, classes))
    if unreadable and not skip_unreadable:
        names = ", ".join(str(f.relative_to(base)) for f, _ in unreadable[:3])
        more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
        raise DataError(
            f"Pillow cannot read {len(unreadable)} file(s) of the {split} split of {base}: {names}{more}; remove them "
            "or pass --skip-unreadable"
        )
    if unreadable:
        log.warning("skipped %d unreadable file(s) in %s (first: %s)", len(unreadable), base, unreadable[0][0].name)
    if not images:
        raise DataError(f"no readable images in the {split} split of {base}")
    label_tensor = torch.tensor(labels, dtype=torch.int64) if classes else None
    if label_tensor is not None:
        digest.update(label_tensor.numpy().tobytes())
    return ImageSet(torch.stack(images), label_tensor, f"folder:{path}", split, str(base.resolve()), digest.hexdigest())
