"""A run directory on disk, beyond its checkpoint: evaluation masks, the data it trained on, versions.

A run directory (written by ``qmae train``) holds ``config.json`` (every option, the architecture,
the data source, package versions), ``checkpoint.pt`` (:mod:`.checkpoint` reads and writes both),
``metrics.jsonl`` (one line per step), ``eval_masks.npz`` (the evaluation masks, drawn once and
saved, so that every model of one architecture is scored on the same masks) and ``loss.png``.
Evaluation, reproduction, the runtime and the benchmarks read runs through this module; none of
them imports the training loop.
"""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import checkpoint as ckpt
from .data import EMBEDDED, ENV_DATA_DIR, MNIST, DataError, ImageSet, default_cache_dir, load_mnist, locate_mnist
from .masking import mask_patches, masks_from_patches

if TYPE_CHECKING:
    from .model import QMAE

__all__ = [
    "RunLockedError",
    "writer_lock",
    "check_new_run_dir",
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
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def evaluation_masks(count: int, model: QMAE, *, seed: int = EVAL_SEED) -> torch.Tensor:
    """``(count, H, W)`` evaluation masks drawn from ``seed``: identical for QMAE and QAE of one
    architecture (they depend on the image size, patch size and mask ratio only)."""
    return model.random_mask(count, generator=torch.Generator().manual_seed(seed)).cpu()


def save_masks(path: str | os.PathLike, masks: torch.Tensor, patch_size: tuple[int, int]) -> None:
    """Atomically save masks as their masked patch indices (a few KB for 10,000 images)."""
    idx = mask_patches(masks, patch_size).numpy().astype(np.uint8)
    patch = np.array(patch_size)
    ckpt.atomic_write(path, lambda fh: np.savez_compressed(fh, patches=idx, image_size=masks.shape[-1], patch=patch))


def load_masks(path: str | os.PathLike, model: QMAE) -> torch.Tensor:
    """Masks saved by :func:`save_masks`, as ``(N, H, W)`` bool for ``model``'s architecture.

    Raises:
        CheckpointError: not a mask file (never unpickled), or masks of another architecture.
    """
    fix = "delete it: the masks are drawn again from their seed"
    try:
        with np.load(path, allow_pickle=False) as data:
            idx, size, patch = data["patches"], int(data["image_size"]), tuple(int(v) for v in data["patch"])
    except Exception as exc:  # numpy raises several types for foreign files (and would suggest unpickling)
        raise ckpt.CheckpointError(
            f"{path} is not a readable evaluation-mask file ({type(exc).__name__}); {fix}"
        ) from None
    rows, cols = (model.image_size // p for p in model.patch_size)
    shape_ok = idx.ndim == 2 and idx.shape[1] == model.num_masked and idx.size and idx.max() < rows * cols
    if size != model.image_size or patch != model.patch_size or not shape_ok:
        raise ckpt.CheckpointError(
            f"{path} holds masks of another architecture ({size}x{size} images, {patch[0]}x{patch[-1]} patches); {fix}"
        )
    return masks_from_patches(torch.as_tensor(idx.astype(np.int64)), model.image_size, model.patch_size)


def saved_evaluation_masks(run_dir: str | os.PathLike, model: QMAE, count: int) -> torch.Tensor:
    """The run's evaluation masks for ``count`` images (drawn and saved on first use; on a
    read-only run they are drawn, identically, and kept in memory)."""
    path = Path(run_dir) / ckpt.EVAL_MASKS
    if path.is_file():
        masks = load_masks(path, model)
        if len(masks) >= count:
            return masks[:count]
    masks = evaluation_masks(count, model)
    with contextlib.suppress(OSError):  # a read-only run: the masks come from a fixed seed, the same every time
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


def _load_split(run_dir: str | os.PathLike, saved: dict[str, Any], split: str, data_dir: str | None) -> ImageSet:
    """The whole ``split`` of the dataset a run trained on, found on this machine."""
    from .datasets import FOLDER_PREFIX, MEMORY, load_dataset, load_memory

    opts = saved["options"]
    name = (saved.get("dataset") or {}).get("name") or opts.get("dataset") or MNIST
    source = str(saved.get("data_source") or EMBEDDED)
    common = dict(image_size=opts["image_size"], test_fraction=opts.get("test_fraction", 0.2))
    if name == MEMORY:
        return load_memory(run_dir, split)
    if name.startswith(FOLDER_PREFIX):  # --data-dir: the folder moved
        folder = f"{FOLDER_PREFIX}{data_dir}" if data_dir else name
        return load_dataset(folder, split, skip_unreadable=opts.get("skip_unreadable", False), **common)
    if name == MNIST and data_dir is None and source == EMBEDDED:
        return load_mnist(split, image_size=opts["image_size"])
    root = data_dir or (_mnist_root(saved, source.removeprefix("download:")) if name == MNIST else None)
    if root is None and name != MNIST:
        given = opts.get("data_dir")
        root = given if given and Path(given).is_dir() else (os.environ.get(ENV_DATA_DIR) or None)
        if root is None and (default_cache_dir() / "data").is_dir() and not opts.get("download"):
            root = str(default_cache_dir() / "data")
    download = root is None and bool(opts.get("download") or source.startswith("download:"))
    if root is None and not download:
        raise DataError(
            f"{run_dir} was trained on {name}, which is not on this machine: pass --data-dir DIR (torchvision's "
            f"layout), set {ENV_DATA_DIR}, or download it once with --download"
        )
    return load_dataset(name, split, root=root, download=download, **common)


def data_for_run(
    run_dir: str | os.PathLike,
    *,
    split: str = "test",
    data_dir: str | None = None,
    limit: int | None = None,
    whole: bool = False,
    check: bool = True,
) -> ImageSet:
    """Images of ``split`` for a run: the dataset it trained on (``config.json`` says which, not
    where), found on this machine, or in ``data_dir`` if given.

    Args:
        run_dir: a run directory.
        split: ``"train"``, ``"test"``, or ``"holdout"``: the training images the run kept out
            of training (``--holdout``).
        data_dir: where the files are, if not where the run expects them (a folder dataset's new
            place, or torchvision's layout).
        limit: the first ``limit`` images (class-balanced when labelled).
        whole: the split before the run's own ``--limit`` and ``--holdout`` (what training reads).
        check: refuse a split whose content differs from the fingerprint the run recorded (off
            for the classifier, which is not part of the run).

    Raises:
        DataError: the data is not on this machine, or changed since the run was trained.
    """
    from .datasets import check_identity, take

    saved = ckpt.load_config(run_dir)
    opts = saved["options"]
    if split == "holdout":  # the training images the run left out (--holdout)
        if not opts.get("holdout"):
            raise DataError(f"{run_dir} held no training images out (train it with --holdout N)")
        data = take(data_for_run(run_dir, split="train", data_dir=data_dir, whole=True, check=check), opts.get("limit"))
        held = data._replace(
            images=data.images[-opts["holdout"] :],
            labels=None if data.labels is None else data.labels[-opts["holdout"] :],
        )
        return take(held, limit) if limit is not None and limit < len(held.images) else held
    data = _load_split(run_dir, saved, split, data_dir)
    if check:
        check_identity(saved.get("dataset"), data, where=str(run_dir))
    if whole or limit is None or limit >= len(data.images):
        return data
    return take(data, limit)


LOCK = ".lock"  # held (flock) by the one process that writes the run
WRITER = ".writer"  # who holds it: "pid host", for the error a second writer gets


class RunLockedError(ValueError):
    """Another process is writing this run directory."""


@contextlib.contextmanager
def writer_lock(run_dir: str | os.PathLike):
    """Hold the run directory's exclusive writer lock for the block (one writer per run).

    A second ``qmae train``, ``--resume`` or ``reproduce`` on the same directory is refused at
    once, naming the process that holds it; the lock is released on every exit path (the
    operating system releases it even after ``kill -9``). While holding it, leftovers of writes
    that a kill interrupted (``.*.tmp``) are removed.

    Raises:
        RunLockedError: another process holds the lock.
        OSError: the directory cannot be written (read-only, ...).
    """
    from filelock import FileLock, Timeout

    path = Path(run_dir)
    lock = FileLock(str(path / LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:  # (a subclass of OSError: first)
        try:
            pid, _, host = (path / WRITER).read_text().strip().partition(" ")
        except OSError:
            pid, host = "", ""
        holder = f"pid {pid or 'unknown'}" + (f" on {host}" if host else "")
        raise RunLockedError(
            f"{path} is being written by another process ({holder}); wait for it to finish, or stop it "
            "and continue with --resume"
        ) from None
    except OSError as exc:  # read-only, missing, not a directory
        raise ValueError(
            f"cannot write to the run directory {path} ({exc.strerror}); copy the run somewhere writable"
        ) from None
    try:
        (path / WRITER).write_text(f"{os.getpid()} {platform.node()}\n")
        for leftover in path.glob(".*.tmp"):  # an atomic write killed half-way (kill -9): nobody else writes here
            leftover.unlink(missing_ok=True)
        yield path
    finally:
        (path / WRITER).unlink(missing_ok=True)
        lock.release()


def check_new_run_dir(run_dir: str | os.PathLike) -> Path:
    """``run_dir`` if a new run may be written there: absent, or an empty directory.

    Raises:
        ValueError: it is a file, already holds a run (use ``--resume``), or is a directory with
            other files (not a run of ours: nothing is written into it).
    """
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file, not a directory; choose a new run directory")
    if (path / ckpt.CONFIG).exists():
        raise ValueError(f"{path} already holds a run; continue it with --resume {path} or choose another --out")
    if path.is_dir() and any(p.name not in (LOCK, WRITER) for p in path.iterdir()):
        raise ValueError(f"--out {path} is a directory with other files in it (not a run of ours); choose a new one")
    return path
