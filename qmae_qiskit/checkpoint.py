"""The files of a run directory, read and written safely: plain, typed I/O (no model building).

``config.json`` (every option, the architecture, package versions, data source) and
``checkpoint.pt`` (weights, token, optimizer, RNG state, position in the epoch). Every file is
written to a temporary name in the same directory and renamed into place, so a crash (even
``kill -9``) leaves either the old file or the new one, never half of one. What the other files of
a run mean is :mod:`qmae_qiskit.runs`'s business; building a model from a checkpoint is
:func:`qmae_qiskit.model.load_model`'s.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckpointError",
    "atomic_write",
    "write_json",
    "save_checkpoint",
    "load_checkpoint",
    "load_config",
    "finalize_checkpoint",
    "is_final",
]

CONFIG = "config.json"
# what config.json's "architecture" must hold (the model's other options have defaults)
ARCHITECTURE_KEYS = ("model", "image_size", "patch_size", "mask_ratio", "trash_qubits", "pairs")
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
EVAL_MASKS = "eval_masks.npz"


class CheckpointError(ValueError):
    """A run directory or checkpoint that cannot be used (the message says why)."""


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], Any]) -> None:
    """Write a file through ``write(fileobj)`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary result files
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    atomic_write(path, lambda fh: fh.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode()))


def save_checkpoint(run_dir: str | os.PathLike, state: dict[str, Any]) -> None:
    """Atomically write ``checkpoint.pt`` into ``run_dir``."""
    atomic_write(Path(run_dir) / CHECKPOINT, lambda fh: torch.save(state, fh))


def load_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's ``config.json``.

    Raises:
        CheckpointError: no such run directory, or an unreadable config.
    """
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir} is not a run directory (no {CONFIG}); train one with 'qmae train --out {run_dir}'"
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"unreadable {path}: {exc}") from None
    problem = None
    if not isinstance(config, dict):
        problem = f"a JSON {type(config).__name__}, not an object"
    elif not isinstance(config.get("options"), dict):
        problem = "no 'options' object"
    elif not isinstance(config.get("architecture"), dict):
        problem = "no 'architecture' object"
    else:
        missing = [k for k in ARCHITECTURE_KEYS if k not in config["architecture"]]
        problem = f"no architecture.{', architecture.'.join(missing)}" if missing else _dataset_problem(config)
    if problem:
        raise CheckpointError(f"{path} is not a qmae-qiskit run config ({problem}); restore it or train a new run")
    if _OPTIONS_SCHEMA is not None:  # every reader sees typed, checked options with their defaults filled in
        config["options"] = _OPTIONS_SCHEMA(config["options"], f"{path} options")
    return config


_OPTIONS_SCHEMA: Callable[[dict[str, Any], str], dict[str, Any]] | None = None


def register_options_schema(schema: Callable[[dict[str, Any], str], dict[str, Any]]) -> None:
    """Install the parser of ``config.json``'s ``"options"`` (the training layer's ``TrainConfig``,
    which this foundation module cannot import): it returns them checked and complete, or raises
    :class:`CheckpointError` naming the file and the key."""
    global _OPTIONS_SCHEMA
    _OPTIONS_SCHEMA = schema


def _dataset_problem(config: dict[str, Any]) -> str | None:
    """What is wrong with ``config.json``'s record of its data (``dataset``, ``data_source``,
    ``train_images``), which evaluation and resume read back; ``None`` if nothing (older runs lack them)."""
    if "data_source" in config and not isinstance(config["data_source"], str):
        return f"data_source is {config['data_source']!r}, not a string"
    if "train_images" in config and (type(config["train_images"]) is not int or config["train_images"] < 1):
        return f"train_images is {config['train_images']!r}, not a positive integer"
    identity = config.get("dataset")
    if identity is None and "dataset" not in config:
        return None
    if not isinstance(identity, dict) or not isinstance(identity.get("name"), str):
        return "dataset is not an object with a name"
    for split in ("train", "test"):
        entry = identity.get(split)
        if split not in identity and split == "test":
            continue
        if not isinstance(entry, dict):
            return f"dataset.{split} is {entry!r}, not an object"
        if type(entry.get("images")) is not int or entry["images"] < 0:
            return f"dataset.{split}.images is {entry.get('images')!r}, not a count"
        sha = entry.get("sha256")
        if sha is not None and (not isinstance(sha, str) or not sha):
            return f"dataset.{split}.sha256 is {sha!r}, not a hash"
    for key, kind in (("root", str), ("test_fraction", (int, float))):
        if key in identity and identity[key] is not None and not isinstance(identity[key], kind):
            return f"dataset.{key} is {identity[key]!r}"
    return None


def load_checkpoint(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's checkpoint state.

    Raises:
        CheckpointError: missing, unreadable or corrupt checkpoint.
    """
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"no checkpoint in {run_dir} ({CHECKPOINT} is missing); the run saved none yet")
    try:
        # weights_only: a checkpoint is tensors and numbers; unpickling anything else could run code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path} holds more than tensors and numbers (not a qmae-qiskit checkpoint, possibly crafted); "
            "refusing to load it"
        ) from None
    except Exception as exc:  # torch raises several types for truncated or foreign files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"corrupt or unreadable checkpoint {path}: {type(exc).__name__}: {first}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a qmae-qiskit checkpoint")
    return state


# what a published run's checkpoint keeps: the weights and token, and the bookkeeping that says where
# the run ended (the optimizer's moments, the data order and the generator are for resuming only)
FINAL_KEYS = ("model", "epoch", "step", "metrics_lines", "eval_fidelity", "config_sha256")


def is_final(state: dict[str, Any]) -> bool:
    """Whether a checkpoint state was finalized (:func:`finalize_checkpoint`): it evaluates, but
    holds nothing to resume training from."""
    return bool(state.get("final")) or "optimizer" not in state


def finalize_checkpoint(run_dir: str | os.PathLike) -> tuple[int, int]:
    """Rewrite a finished run's ``checkpoint.pt`` with only what loading and evaluating the model
    need (:data:`FINAL_KEYS`), marked final: what a run committed or shared for others to load
    keeps, about a third of the size (Adam's two moments per weight are gone). The run then loads and
    evaluates as before; ``qmae train --resume`` refuses it in one line (fine-tune from it with
    ``--init-from``). Atomic; finalizing a final checkpoint changes nothing.

    Returns:
        ``(bytes before, bytes after)``.

    Raises:
        CheckpointError: no readable checkpoint in ``run_dir``.
    """
    path = Path(run_dir) / CHECKPOINT
    before = path.stat().st_size if path.is_file() else 0
    state = load_checkpoint(run_dir)
    if state.get("final"):
        return before, before
    final = {key: state[key] for key in FINAL_KEYS if key in state}
    final["final"] = True
    save_checkpoint(run_dir, final)
    return before, path.stat().st_size
