"""Which images: a dataset by name, a folder of your own image files, or tensors already in memory.

Every path of the toolkit takes its images from :func:`load_dataset`:

``mnist`` (default)
    torchvision's MNIST: ``--data-dir``, ``$QMAE_DATA_DIR``, ``--download``, or the embedded
    sample (:mod:`qmae_qiskit.data`).
``fashion-mnist``, ``kmnist``, ``emnist-digits``, ``cifar10-gray``
    torchvision's ``FashionMNIST``, ``KMNIST``, ``EMNIST(split="digits")`` and ``CIFAR10``
    (converted to grayscale), from ``--data-dir`` / ``$QMAE_DATA_DIR`` in torchvision's layout, or
    downloaded with ``--download`` into the user cache.
``folder:PATH``
    A directory of image files (anything Pillow reads). With class sub-folders (torchvision's
    ``ImageFolder`` convention) the labels come from them; without, the set is unlabelled (no
    classifier, no accuracy). ``PATH/train`` and ``PATH/test`` are the splits when both exist;
    otherwise a seeded split of the files (``test_fraction``). Files are read in file-name order.

Every image is converted to grayscale, resized to the model's side with antialiasing and scaled
to [0, 1]. Each split carries a **fingerprint** (a SHA-256 of its content), which a run records
in ``config.json`` (:func:`dataset_identity`), so that evaluating, resuming or submitting a run
uses the same images without repeating where they are, and refuses when the files changed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .data import (
    EMBEDDED,
    ENV_DATA_DIR,
    MNIST,
    DataError,
    ImageSet,
    balanced_subset,
    default_cache_dir,
    fingerprint,
    load_mnist,
    resize,
)

__all__ = [
    "MEMORY_FILE",
    "memory_splits",
    "save_memory",
    "load_memory",
    "take",
    "DATASETS",
    "FOLDER_PREFIX",
    "MEMORY",
    "load_dataset",
    "images_from",
    "fingerprint",
    "dataset_identity",
    "check_identity",
]

# name -> (torchvision class, its keyword arguments, channels to average)
TORCHVISION = {
    "fashion-mnist": ("FashionMNIST", {}),
    "kmnist": ("KMNIST", {}),
    "emnist-digits": ("EMNIST", {"split": "digits"}),
    "cifar10-gray": ("CIFAR10", {}),
}
DATASETS = (MNIST,) + tuple(TORCHVISION) + ("folder:PATH",)
FOLDER_PREFIX = "folder:"
MEMORY = "memory"  # tensors or a torch Dataset handed to train(): saved inside the run


def load_dataset(
    name: str = MNIST,
    split: str = "train",
    *,
    root: str | os.PathLike | None = None,
    download: bool = False,
    image_size: int = 16,
    limit: int | None = None,
    test_fraction: float = 0.2,
    skip_unreadable: bool = False,
) -> ImageSet:
    """The images of ``split`` of the dataset called ``name`` (see the module docstring).

    Args:
        name: a name of :data:`DATASETS` or ``"folder:PATH"``.
        split: ``"train"`` or ``"test"``.
        root: torchvision's layout for the named sets (else ``$QMAE_DATA_DIR``, a download, or
            for MNIST the embedded sample).
        download: download a named set with torchvision into the user cache.
        image_size: output side, a power of 2.
        limit: the first ``limit`` images (class-balanced when labelled).
        test_fraction: a folder without ``train`` / ``test`` sub-folders: the share of its
            files (a seeded, fixed choice) that forms the test split.
        skip_unreadable: a folder's files Pillow cannot read are skipped (with a warning) instead
            of refused.

    Returns:
        An :class:`~qmae_qiskit.data.ImageSet` with its ``fingerprint``.

    Raises:
        DataError: an unknown name, missing or unreadable files, an empty set or split, or a
            ``limit`` larger than the set.
    """
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    if name in (MNIST, EMBEDDED):
        data = load_mnist(split, root=root, download=download, image_size=image_size)
    elif name in TORCHVISION:
        data = _torchvision_set(name, split, root=root, download=download, image_size=image_size)
    elif name.startswith(FOLDER_PREFIX):
        from .folders import load_folder

        data = load_folder(name[len(FOLDER_PREFIX) :], split, image_size=image_size, test_fraction=test_fraction,
                           skip_unreadable=skip_unreadable)  # fmt: skip
    else:
        raise DataError(
            f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} (folder:PATH is a directory of image files)"
        )
    return take(data, limit)


def take(data: ImageSet, limit: int | None) -> ImageSet:
    """The first ``limit`` images of a set (class-balanced when labelled), its fingerprint kept.

    Raises:
        DataError: ``limit`` is not positive, or more images than the set has.
    """
    if limit is None or limit == len(data.images):
        return data
    if limit < 1:
        raise DataError(f"--limit must be a positive number of images, got {limit}")
    if limit > len(data.images):
        raise DataError(f"--limit {limit} but the {data.split} split has {len(data.images)} images; ask for fewer")
    if data.labels is None:
        idx = torch.arange(limit)
    else:
        idx = balanced_subset(data.labels, limit)
        if len(idx) < limit:
            raise DataError(
                f"--limit {limit} cannot be class-balanced: the {data.split} split's smallest class is too small "
                f"({len(idx)} images can be); ask for fewer"
            )
    return data._replace(images=data.images[idx], labels=None if data.labels is None else data.labels[idx])


def _torchvision_root(name: str, root: str | os.PathLike | None, download: bool) -> Path:
    if root is None and os.environ.get(ENV_DATA_DIR):
        root = os.environ[ENV_DATA_DIR]
    if root is None and not download:
        raise DataError(
            f"{name} is not bundled: pass --data-dir DIR (torchvision's layout), set {ENV_DATA_DIR}, or --download it "
            "(needs the internet)"
        )
    path = Path(root).expanduser() if root is not None else default_cache_dir() / "data"
    if root is not None and not path.is_dir():
        raise DataError(f"data directory {path} does not exist; pass an existing --data-dir or --download")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _torchvision_set(name: str, split: str, *, root: Any, download: bool, image_size: int) -> ImageSet:
    import torchvision.datasets as tv

    class_name, kwargs = TORCHVISION[name]
    path = _torchvision_root(name, root, download)
    try:
        ds = getattr(tv, class_name)(str(path), train=split == "train", download=download, **kwargs)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "not found" in first.lower() or "download=True" in first:
            raise DataError(
                f"no {name} files under {path} (torchvision's {class_name} layout): pass --download to fetch them, or "
                f"--data-dir / {ENV_DATA_DIR} pointing at a directory that has them"
            ) from None
        if download:
            raise DataError(
                f"could not download {name} into {path} ({first}); without internet use --data-dir"
            ) from None
        raise DataError(
            f"unreadable {name} files under {path} ({type(exc).__name__}: {first}); restore or re-download them"
        ) from None
    images = torch.as_tensor(ds.data)
    if images.dim() == 4:  # CIFAR-10: (N, 32, 32, 3) RGB -> luminance (ITU-R 601, as PIL's "L")
        weights = torch.tensor([0.299, 0.587, 0.114])
        images = (images.float() * weights).sum(-1).round().clamp(0, 255).to(torch.uint8)
    if class_name == "EMNIST":  # EMNIST is stored transposed
        images = images.transpose(1, 2)
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return ImageSet(resize(images, image_size), labels, name, split, str(path.resolve()), fingerprint(images, labels))


def images_from(data: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images (and labels, if any) from what a Python user has: an :class:`ImageSet`, a tensor
    ``(N, H, W)`` (or ``(N, 1, H, W)``), or a ``torch.utils.data.Dataset`` yielding
    ``(image, label)`` or images. Pixels in [0, 1] (uint8 is divided by 255).

    Raises:
        DataError: anything else, an empty set, or images that are not square 2-D arrays.
    """
    if isinstance(data, ImageSet):
        images, labels = data.images, data.labels
    elif isinstance(data, torch.Tensor):
        images, labels = data, None
    elif isinstance(data, torch.utils.data.Dataset):
        items = [data[i] for i in range(len(data))]  # type: ignore[arg-type]
        pairs = all(isinstance(x, (tuple, list)) and len(x) == 2 for x in items)
        images = torch.stack([torch.as_tensor(x[0] if pairs else x) for x in items]) if items else torch.empty(0)
        labels = torch.as_tensor([int(x[1]) for x in items]) if pairs and items else None
    else:
        raise DataError(
            f"dataset= takes a name, an ImageSet, a tensor (N, H, W) or a torch Dataset; got {type(data).__name__}"
        )
    if images.device.type == "meta":
        raise DataError("the dataset's images are on the meta device (shapes without values); pass real tensors")
    if images.is_complex() or images.dtype == torch.bool or not (images.is_floating_point() or _integer(images)):
        raise DataError(
            f"the dataset's images must hold real pixel values (float in [0, 1] or uint8), got {images.dtype}; "
            "convert them, e.g. images.abs().float() / images.abs().max()"
        )
    images = images.cpu()
    if images.is_floating_point() and not torch.isfinite(images).all():
        bad = int((~torch.isfinite(images.flatten(1))).any(1).nonzero()[0, 0]) if images.dim() > 1 else 0
        raise DataError(
            f"image {bad} of the dataset has a NaN or infinite pixel; replace it (torch.nan_to_num) or drop the image"
        )
    if images.dim() == 4 and images.shape[1] in (1, 3):
        images = images.float().mean(1) if images.shape[1] == 3 else images[:, 0]
    if images.dim() != 3 or len(images) == 0 or images.shape[1] != images.shape[2]:
        raise DataError(
            f"the dataset's images must be a non-empty stack of square images (N, H, W), got {tuple(images.shape)}"
        )
    if labels is not None and (labels.device.type == "meta" or len(labels) != len(images)):
        raise DataError(f"the dataset has {len(images)} images but {len(labels)} labels; pass one label per image")
    return images, labels


def _integer(images: torch.Tensor) -> bool:
    return images.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def dataset_identity(
    name: str, train: ImageSet, test: ImageSet | None, *, root: str | None, test_fraction: float
) -> dict[str, Any]:
    """What ``config.json`` records of the data: the name, where (a path relative to the working
    directory for a folder), the splits' sizes and fingerprints."""
    identity: dict[str, Any] = {"name": name, "train": {"images": len(train.images), "sha256": train.fingerprint}}
    if test is not None:
        identity["test"] = {"images": len(test.images), "sha256": test.fingerprint}
    if name.startswith(FOLDER_PREFIX):
        identity["test_fraction"] = test_fraction
    if root is not None:
        identity["root"] = root
    return identity


def check_identity(identity: dict[str, Any] | None, data: ImageSet, *, where: str) -> None:
    """Refuse images whose split no longer matches the recorded fingerprint.

    Raises:
        DataError: the files changed (or another copy of the set differs) since the run recorded them.
    """
    recorded = (identity or {}).get(data.split, {}).get("sha256")
    if identity is None or recorded is None or data.fingerprint is None or recorded == data.fingerprint:
        return
    raise DataError(
        f"the {data.split} images of {identity['name']} changed since {where} was trained (sha256 {recorded[:12]}... "
        f"recorded, {data.fingerprint[:12]}... now: {len(data.images)} images); restore the files it used, or train "
        "a new run on these"
    )


MEMORY_FILE = "dataset.pt"  # a run trained on tensors keeps them: evaluate and resume need no caller


def memory_splits(data: Any, *, image_size: int, test_fraction: float = 0.2) -> dict[str, ImageSet]:
    """The train and test splits of in-memory images (:func:`images_from`), resized: a seeded,
    fixed share ``test_fraction`` of them is the test split.

    Raises:
        DataError: not images, pixels outside [0, 1], or a split that would be empty.
    """
    images, labels = images_from(data)
    if images.dtype != torch.uint8 and (images.min() < 0 or images.max() > 1):
        raise DataError(
            f"the dataset's pixels must be in [0, 1] (or uint8), got {images.min().item():g}..{images.max().item():g}"
        )
    count = round(len(images) * test_fraction)
    if not 0 < test_fraction < 1 or count in (0, len(images)):
        raise DataError(
            f"{len(images)} image(s) with test fraction {test_fraction:g} leave an empty split; pass more images or "
            "another test_fraction (between 0 and 1)"
        )
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    splits = {"test": order[:count].sort().values, "train": order[count:].sort().values}
    out = {}
    for split, idx in splits.items():
        raw, lab = images[idx], None if labels is None else labels[idx]
        out[split] = ImageSet(resize(raw, image_size), lab, MEMORY, split, None, fingerprint(raw, lab))
    return out


def save_memory(run_dir: str | os.PathLike, splits: dict[str, ImageSet]) -> None:
    """Keep a run's in-memory splits inside it (tensors only: it loads with ``weights_only``)."""
    from .checkpoint import atomic_write

    payload = {
        f"{split}_{key}": getattr(data, key)
        for split, data in splits.items()
        for key in ("images", "labels", "fingerprint")
    }
    atomic_write(Path(run_dir) / MEMORY_FILE, lambda fh: torch.save(payload, fh))


def load_memory(run_dir: str | os.PathLike, split: str) -> ImageSet:
    """A split a run trained on tensors kept (:func:`save_memory`).

    Raises:
        DataError: the run's ``dataset.pt`` is missing or unreadable.
    """
    path = Path(run_dir) / MEMORY_FILE
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        images, labels, content = (
            payload[f"{split}_images"],
            payload[f"{split}_labels"],
            payload[f"{split}_fingerprint"],
        )
    except Exception as exc:
        raise DataError(
            f"{run_dir} was trained on tensors, but its {MEMORY_FILE} is unreadable ({type(exc).__name__})"
        ) from None
    return ImageSet(images, labels, MEMORY, split, None, content)
