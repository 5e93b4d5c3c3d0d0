"""Training (paper Algorithm 1, with mini-batches), safe checkpoints and exact resume.

    for epoch:                                       (Algorithm 1, line 1)
        for batch of images in a seeded shuffle:     (line 2; batch_size=1 is the paper exactly)
            mask = new random patches per image      (line 3)
            loss = mean(1 - F(fill(image, mask)))    (lines 4-7)
            Adam step                                (line 8)

All randomness after the initial weights (data order, masks) comes from one ``torch.Generator``
whose state is saved in the checkpoint with the position in the epoch, so a resumed run ends with
bit-for-bit the weights of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from .checkpoint import CheckpointError
from .data import ImageSet
from .datasets import MEMORY, dataset_identity, load_dataset, memory_splits, save_memory, take
from .engines import ENGINES
from .engines.noisy import NoisyEngine
from .evaluation import evaluate
from .figures import save_loss_plot
from .model import LOSSES, QMAE, ModelConfig, build_model, load_model
from .noise import noise_for
from .options import OptionError, Options, data_dir_option, dataset_option, option
from .runs import check_new_run_dir, data_for_run, saved_evaluation_masks, versions, writer_lock

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "train", "resume"]

SCHEDULES = ("constant", "cosine")
# The acceptance term's default weight with --objective postselect, chosen on held-out training
# images (docs/study.md, "Choosing the keep weight").
DEFAULT_KEEP_WEIGHT = 0.05


@dataclass(frozen=True)
class TrainConfig(Options):
    """Every option of a training run: the architecture (:class:`~qmae_qiskit.model.ModelConfig`)
    and the loop's own options, each declared once below (type, default, allowed values, help).

    ``config.json`` records them flat under ``"options"`` (:meth:`to_dict`); the ``qmae train``
    flags are generated from them; :func:`train` takes every one as a keyword. Build one from flat
    options with :meth:`of`: ``TrainConfig.of(layers=2, epochs=1)``.
    """

    architecture: ModelConfig = field(default_factory=ModelConfig)
    engine: str = option("exact", "exact (batched torch) or estimator (EstimatorQNN on Aer)", choices=ENGINES)
    epochs: int = option(3, "passes over the training images", minimum=1)
    batch_size: int = option(
        32,
        "images per Adam step (1 = the paper's Algorithm 1; 32: best fidelity per minute, docs/batch_size.md)",
        minimum=1,
    )
    lr: float = option(0.02, "Adam learning rate", above=0)
    schedule: str = option("cosine", "learning-rate schedule", choices=SCHEDULES)
    seed: int = option(0, "seeds the weights, the data order and the masks", minimum=0, maximum=2**62)
    limit: int | None = option(None, "train on the first N images, class-balanced", minimum=1, metavar="N")
    dataset: str = dataset_option()
    test_fraction: float = option(
        0.2, "a folder without train/ and test/ sub-folders: the share of its files for testing", above=0, below=1
    )
    data_dir: str | None = data_dir_option()
    download: bool = option(False, "download the dataset with torchvision (needs the internet)")
    skip_unreadable: bool = option(
        False, "skip a folder's files Pillow cannot read (default: refuse them, naming them)"
    )
    checkpoint_every: int = option(0, "also checkpoint every N steps (0: at epoch ends only)", minimum=0, metavar="N")
    eval_limit: int = option(1000, "held-out images scored after each epoch (0 skips)", minimum=0, metavar="N")
    device: str = option("cpu", "torch device of the exact engine: cpu, cuda, cuda:1, ...")
    trash_weight: float = option(
        0.0,
        "add W x mean(1 - P(trash = 0)) to the reset objective's loss (Romero et al.'s compression term; 0 = the "
        "paper's loss)",
        minimum=0,
        metavar="W",
    )
    keep_weight: float | None = option(
        None,
        f"with --objective postselect or --ancillas: the weight of mean(1 - P(keep)) in the loss, which holds the "
        f"kept fraction up (default {DEFAULT_KEEP_WEIGHT}, chosen on held-out training images)",
        minimum=0,
        metavar="W",
    )
    loss: str = option(
        "fidelity",
        "fidelity: 1 - F of the whole image (the paper's); composite: 1 - F of the composite (visible pixels kept, "
        "the model's patch pasted in), a loss aimed at the patch as classical MAEs' is (exact engine)",
        choices=LOSSES,
    )
    holdout: int = option(
        0, "keep the last N training images out of training (to choose options on them)", minimum=0, metavar="N"
    )
    init_from: str | None = option(
        None, "start from a trained run's weights and token (fine-tuning; its architecture is kept)", metavar="RUN_DIR"
    )
    noise: str | None = option(
        None,
        "train under a device's noise: a fake_* device (fake_fez, ...) whose calibration is mapped onto the circuit "
        "as Pauli errors after every block and on the embedding, one sampled trajectory per image "
        "(qmae_qiskit.noise); the held-out fidelity stays noiseless",
        metavar="DEVICE",
    )
    tensorboard: bool = option(
        False,
        "also write TensorBoard event files into RUN/tensorboard (loss, fidelity, P(keep), lr, held-out fidelity per "
        "step; metrics.jsonl stays the record); needs pip install 'qmae-qiskit[tensorboard]'",
    )

    @classmethod
    def of(cls, **options: Any) -> TrainConfig:
        """A configuration from flat options, architecture ones included:
        ``TrainConfig.of(layers=2, epochs=1)``.

        Raises:
            OptionError: an unknown option.
        """
        return cls().with_options(**options)

    def with_options(self, **options: Any) -> TrainConfig:
        """A copy with flat ``options`` changed (architecture ones go to :attr:`architecture`).

        Raises:
            OptionError: an unknown option.
        """
        options = {ModelConfig.ALIASES.get(k, k): v for k, v in options.items()}
        arch = {k: options.pop(k) for k in list(options) if k in ModelConfig.names()}
        unknown = sorted(set(options) - self.names())
        if unknown:
            raise OptionError(f"unknown training option(s) {unknown}; see qmae train --help")
        return dataclasses.replace(self, architecture=self.architecture.replace(**arch), **options)

    @classmethod
    def flat_names(cls) -> set[str]:
        """Every option's name, the architecture's included."""
        return cls.names() | ModelConfig.names()

    def to_dict(self) -> dict[str, Any]:
        """Flat: the architecture's options, then the loop's (``config.json``'s ``"options"``)."""
        return {**self.architecture.to_dict(), **super().to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "options", **extra: Any) -> TrainConfig:
        """Read the flat ``"options"`` of a ``config.json`` (older files included), checked.

        Raises:
            OptionError: an unknown key or a bad value, named as ``where.key``.
        """
        if not isinstance(data, Mapping):
            raise OptionError(f"{where} must be a JSON object, got {type(data).__name__}")
        arch = {k: v for k, v in data.items() if ModelConfig.ALIASES.get(k, k) in ModelConfig.names()}
        own = {k: v for k, v in data.items() if k not in arch}  # unknown keys are refused with these
        return super().from_dict(own, where=where, architecture=ModelConfig.from_dict(arch, where=where))

    @property
    def keeps_shots(self) -> bool:
        """Whether the model discards shots (post-selected, or an ancilla-assisted decoder)."""
        return self.architecture.objective == "postselect" or self.architecture.ancillas > 0

    @property
    def keep_term(self) -> float:
        """The acceptance term's weight in the loss (0 unless post-selected)."""
        if not self.keeps_shots:
            return 0.0
        return DEFAULT_KEEP_WEIGHT if self.keep_weight is None else float(self.keep_weight)

    def _check(self) -> None:
        """The rules between options; the architecture's own in :meth:`ModelConfig._check`."""
        arch = self.architecture
        arch.validate()
        if not isinstance(self.dataset, str):
            raise OptionError("{0} is a name here; pass tensors or a Dataset to train(dataset=...) directly", "dataset")
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError):
            raise OptionError(
                f"{{0}} must be a torch device such as cpu or cuda, got {self.device!r}", "device"
            ) from None
        if device.type not in ("cpu", "cuda", "mps", "xpu"):
            raise OptionError(f"{{0}} {self.device}: qmae trains on cpu or cuda", "device")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise OptionError("{0} cuda but torch sees no CUDA GPU here; use {0} cpu", "device")
        if device.type != "cpu" and self.engine != "exact":
            raise OptionError(
                f"{{0}} {self.device} needs {{1}} exact (the estimator engine runs on Aer)", "device", "engine"
            )
        if arch.embedding_layers is not None and self.engine != "exact":
            raise OptionError("{0} needs {1} exact", "embedding_layers", "engine")
        if self.keep_weight is not None and not self.keeps_shots:
            raise OptionError(
                "{0} holds the kept fraction of {1} postselect (or of {2} >= 1); add one, or drop it",
                "keep_weight",
                "objective",
                "ancillas",
            )
        if self.loss == "composite" and self.engine != "exact":
            raise OptionError("{0} composite reads the output's pixels: it needs {1} exact", "loss", "engine")
        if self.trash_weight > 0 and arch.objective == "postselect":
            raise OptionError(
                "{0} is the reset objective's compression term; with {1} postselect the same term is the acceptance "
                "term: use {2}",
                "trash_weight",
                "objective",
                "keep_weight",
            )
        if arch.ansatz == "unitary" and self.engine != "exact":
            raise OptionError(
                "{0} unitary is a bound computed by the exact engine only; use {1} exact", "ansatz", "engine"
            )
        if self.noise is not None:
            if not self.noise.startswith("fake_"):
                raise OptionError(
                    f"{{0}} {self.noise}: name a fake_* device (fake_fez, ...), whose calibration is on this machine",
                    "noise",
                )
            for name, bad in (
                ("engine", self.engine != "exact"),
                ("loss", self.loss != "fidelity"),
                ("ansatz", arch.ansatz != "blocks"),
                ("ancillas", arch.ancillas > 0),
                ("embedding_layers", arch.embedding_layers is not None),
            ):
                if bad:
                    raise OptionError(
                        "{0} trains through the noisy engine: the exact engine's blocks circuit, the fidelity "
                        "loss, no ancillas, the exact embedding; drop {1}",
                        "noise",
                        name,
                    )
        if self.init_from is not None and not (Path(self.init_from) / ckpt.CHECKPOINT).is_file():
            raise OptionError(
                f"{{0}} {self.init_from} is not a trained run directory (no {ckpt.CHECKPOINT}); give a directory "
                "written by qmae train",
                "init_from",
            )

    def build_model(self) -> QMAE:
        """A freshly initialized model for these options (or the ``init_from`` run's model, with
        this run's objective and embedding).

        Raises:
            OptionError: an impossible architecture.
        """
        if self.init_from is not None:
            model = load_model(self.init_from, engine=self.engine).set_embedding(self.architecture.embedding_layers)
            model.config = model.config.replace(objective=self.architecture.objective)
            return model
        return build_model(self.architecture, engine=self.engine, seed=self.seed)


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained model.
        history: one dict per step (the lines of ``metrics.jsonl``).
        run_dir: where the run lives.
        eval_fidelity: mean held-out fidelity after the last epoch (``None`` if not evaluated).
    """

    model: QMAE
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: Path | None = None
    eval_fidelity: float | None = None


def _lr_at(config: TrainConfig, step: int, total: int) -> float:
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
    return config.lr


def _load_data(config: TrainConfig, split: str) -> ImageSet:
    """The whole ``split`` of the configured dataset (``limit`` is applied by the caller)."""
    return load_dataset(
        config.dataset,
        split,
        root=config.data_dir,
        download=config.download,
        image_size=config.architecture.image_size,
        test_fraction=config.test_fraction,
        skip_unreadable=config.skip_unreadable,
    )


class TrainingDiverged(ValueError):
    """A non-finite loss, gradient or weight stopped the run at a step (nothing non-finite saved).

    Attributes:
        removable: no checkpoint exists yet (the run directory holds nothing to resume).
    """

    def __init__(self, message: str, *, removable: bool) -> None:
        super().__init__(message)
        self.removable = removable


class _StopFlag:
    """SIGINT and SIGTERM handling for the duration of a run (main thread only; elsewhere the
    default handlers stay).

    SIGTERM is what SLURM, Kubernetes and ``timeout`` send before a kill: it is treated as Ctrl-C.
    The first signal only raises a flag: the step in flight finishes and the run saves at that
    step boundary. A second one stops at once, but never inside a save (``shield``): the
    checkpoint only ever holds a completed step.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.raised = False
        self.shielded = False
        self.name = "interrupted"
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGTERM:
            self.name = "terminated (SIGTERM)"
        if self.raised and not self.shielded:  # a second signal: stop now
            raise KeyboardInterrupt
        self.raised = True

    @contextlib.contextmanager
    def shield(self):
        """A signal is recorded but does not interrupt the block (a checkpoint being written)."""
        self.shielded = True
        try:
            yield
        finally:
            self.shielded = False

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


class _Run:
    """One training run bound to its directory: the loop, checkpoints and metrics."""

    def __init__(
        self, config: TrainConfig, run_dir: Path, *, progress: bool, data: dict[str, ImageSet] | None = None
    ) -> None:
        self.config, self.run_dir, self.progress = config, run_dir, progress
        self.device = torch.device(config.device)
        self.model = config.build_model().to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.noisy: NoisyEngine | None = None  # config.noise: the engine training steps go through
        self.noise_generator = torch.Generator().manual_seed(config.seed + 2)
        if config.noise is not None:
            try:
                self.device_noise = noise_for(self.model, config.noise)
            except ValueError as exc:
                raise OptionError(f"{{0}}: {exc}", "noise") from None
            exact = self.model._engine
            self.noisy = NoisyEngine(
                self.model.num_qubits,
                self.model.encoder_pairs,
                self.model.trash_qubits,
                noise=self.device_noise.block_noise(),
                dtype=getattr(exact, "dtype", torch.complex64),
                generator=self.noise_generator,
            )
        # the splits, whole: given (tensors from Python), or loaded; the run records their fingerprints
        self.data = data or {"train": _load_data(config, "train")}
        self.train = take(self.data["train"], config.limit)
        if config.holdout:  # the last images stay out of training, for choosing options (never the test split)
            if config.holdout >= len(self.train.images):
                raise OptionError(
                    f"{{0}} {config.holdout} leaves no training images out of {len(self.train.images)}", "holdout"
                )
            labels = self.train.labels
            self.train = self.train._replace(
                images=self.train.images[: -config.holdout],
                labels=None if labels is None else labels[: -config.holdout],
            )
        if len(self.train.images) < config.batch_size:
            raise OptionError(
                f"{len(self.train.images)} training images but {{0}} {config.batch_size}: ask for a batch of "
                f"at most {len(self.train.images)} or train on more images",
                "batch_size",
            )
        self.steps_per_epoch = math.ceil(len(self.train.images) / config.batch_size)
        self.epoch, self.step = 0, 0
        self.perm: torch.Tensor | None = None
        self.history: list[dict[str, Any]] = []
        self.eval_fidelity: float | None = None
        self.summary_writer_class = _summary_writer_class() if config.tensorboard else None
        self.board: Any = None

    # -- state ----------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "step": self.step,
            "perm": self.perm,
            "metrics_lines": len(self.history),
            "eval_fidelity": self.eval_fidelity,
            "config_sha256": config_fingerprint(self.config),
            "noise_generator": self.noise_generator.get_state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        if "noise_generator" in state:  # checkpoints before noise-aware training have none
            self.noise_generator.set_state(state["noise_generator"])
        self.epoch, self.step, self.perm = state["epoch"], state["step"], state["perm"]
        self.eval_fidelity = state.get("eval_fidelity")
        # drop metrics written after the checkpoint (a kill -9 between checkpoints)
        path = self.run_dir / ckpt.METRICS
        lines = path.read_text().splitlines()[: state["metrics_lines"]] if path.exists() else []
        self.history = [json.loads(line) for line in lines]
        ckpt.atomic_write(path, lambda fh: fh.write("".join(line + "\n" for line in lines).encode()))

    def save(self) -> None:
        ckpt.save_checkpoint(self.run_dir, self.state())

    # -- loop -----------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg = self.config
        if self.noisy is not None:  # what the run trained under, in numbers (the device's calibration mapped)
            ckpt.write_json(self.run_dir / NOISE, asdict(self.device_noise))
        total = cfg.epochs * self.steps_per_epoch
        metrics = open(self.run_dir / ckpt.METRICS, "a")  # noqa: SIM115 (open for the whole loop; closed in finally)
        board = self.board = self._board()
        self.stop = _StopFlag()
        self.boundary = True  # the state is at a step boundary: what a checkpoint may hold
        bar = tqdm(
            total=total,
            initial=self.epoch * self.steps_per_epoch + self.step,
            disable=not self.progress,
            unit="step",
            dynamic_ncols=True,
        )
        try:
            while self.epoch < cfg.epochs:
                bar.set_description(f"epoch {self.epoch + 1}/{cfg.epochs}")
                while self.step < self.steps_per_epoch:
                    record = self._step(total)
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
                    if board is not None:
                        for key in BOARD_SCALARS:
                            if key in record:
                                board.add_scalar(f"train/{key}", record[key], record["step"])
                    self.boundary = True
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{record['images_per_s']:.0f}")
                    if self.stop.raised:
                        raise KeyboardInterrupt
                    if (
                        cfg.checkpoint_every
                        and self.step % cfg.checkpoint_every == 0
                        and self.step < self.steps_per_epoch
                    ):
                        self._save_shielded()
                self.epoch, self.step, self.perm = self.epoch + 1, 0, None
                if cfg.eval_limit:
                    self.eval_fidelity = self._evaluate()
                    bar.write(f"epoch {self.epoch}: held-out fidelity {self.eval_fidelity:.4f}")
                    if board is not None:
                        board.add_scalar("heldout/fidelity", self.eval_fidelity, self.epoch * self.steps_per_epoch)
                self._save_shielded()
        except KeyboardInterrupt:
            bar.close()
            if self.boundary:
                self._save_shielded()
                message = f"{self.stop.name}; checkpoint saved"
            else:  # a second signal inside a step: the last checkpoint (a completed step) stands
                message = f"{self.stop.name} mid-step; the last checkpoint stands (its steps are redone on resume)"
            raise KeyboardInterrupt(f"{message}. Continue with: qmae train --resume {self.run_dir}") from None
        finally:
            self.stop.restore()
            metrics.close()
            if board is not None:
                board.close()
            bar.close()
        save_loss_plot(
            self.history,
            self.run_dir / "loss.png",
            title=f"{cfg.architecture.model.upper()} training loss",
            ylabel="1 - fidelity",
        )
        return TrainResult(self.model, self.history, self.run_dir, self.eval_fidelity)

    def _board(self) -> Any:
        """A TensorBoard writer into ``RUN/tensorboard`` (``--tensorboard``), or ``None``. On resume
        its ``purge_step`` drops events past the checkpoint, as :meth:`restore` drops such metrics."""
        if self.summary_writer_class is None:
            return None
        done = self.epoch * self.steps_per_epoch + self.step
        return self.summary_writer_class(str(self.run_dir / TENSORBOARD_DIR), purge_step=done or None)

    def _save_shielded(self) -> None:
        with self.stop.shield():
            self.save()
            if self.board is not None:  # the events up to a checkpoint survive a kill, as its metrics do
                self.board.flush()

    def _check_finite(self, values: torch.Tensor | list[torch.Tensor], step: int, what: str) -> None:
        """Stop at this step, before anything non-finite is written (issue 21: finite training)."""
        tensors = values if isinstance(values, list) else [values]
        if all(bool(torch.isfinite(t.detach()).all()) for t in tensors):
            return
        have = (self.run_dir / ckpt.CHECKPOINT).is_file()
        kept = (
            f"the last checkpoint ({self.run_dir / ckpt.CHECKPOINT}) stands"
            if have
            else "nothing was checkpointed, so the run directory is removed"
        )
        raise TrainingDiverged(
            f"training diverged: the {what} became non-finite at step {step} (lr {self.config.lr:g}, trash_weight "
            f"{self.config.trash_weight:g}, keep_weight {self.config.keep_term:g}); {kept}. Lower --lr or the "
            "loss weights and train again",
            removable=not have,
        )

    def _step(self, total: int) -> dict[str, Any]:
        """One Adam step; returns its metrics record. Between its first change of the state (the
        generator draws) and the record appended to the history, the state is mid-step."""
        cfg, images = self.config, self.train.images
        self.boundary = False
        if self.perm is None:
            self.perm = torch.randperm(len(images), generator=self.generator)
        perm: torch.Tensor = self.perm
        t0 = time.perf_counter()
        idx = perm[self.step * cfg.batch_size : (self.step + 1) * cfg.batch_size]
        batch = images[idx].to(self.device)
        # the masks are drawn on the CPU: the same masks on any device
        mask = self.model.random_mask(len(idx), generator=self.generator).to(self.device)
        global_step = self.epoch * self.steps_per_epoch + self.step
        lr = _lr_at(cfg, global_step, total)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self._through_noise():
            terms = self.model.loss_terms(
                batch, mask, trash_weight=cfg.trash_weight, keep_weight=cfg.keep_term, loss=cfg.loss
            )
        self.optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        self._check_finite(terms.loss, global_step, "loss")
        self._check_finite([p.grad for p in self.model.parameters() if p.grad is not None], global_step, "gradient")
        self.optimizer.step()
        self._check_finite(list(self.model.parameters()), global_step, "weights")
        self.step += 1
        rate = len(idx) / (time.perf_counter() - t0)
        record = {
            "epoch": self.epoch,
            "step": global_step,
            "loss": terms.loss.item(),
            "fidelity": terms.fidelity.mean().item(),
            "lr": lr,
            "images_per_s": rate,
        }
        if cfg.keeps_shots:
            record["keep_probability"] = terms.kept.mean().item()
        self.history.append(record)
        return record

    @contextlib.contextmanager
    def _through_noise(self) -> Iterator[None]:
        """The step's forward pass through the noisy engine (``config.noise``); the model keeps
        its exact engine for everything else (the held-out fidelity, evaluation)."""
        if self.noisy is None:
            yield
            return
        exact, self.model._engine = self.model._engine, self.noisy  # type: ignore[assignment]
        try:
            yield
        finally:
            self.model._engine = exact

    def test_split(self) -> ImageSet:
        if "test" not in self.data:
            self.data["test"] = _load_data(self.config, "test")
        return self.data["test"]

    def _evaluate(self) -> float:
        test = self.test_split()
        held_out = take(test, self.config.eval_limit) if self.config.eval_limit < len(test.images) else test
        masks = saved_evaluation_masks(self.run_dir, self.model, len(held_out.images))
        return evaluate(self.model, held_out.images, masks).fidelity


def train(
    config: TrainConfig | None = None, *, out: str | os.PathLike, progress: bool = True, **options: Any
) -> TrainResult:
    """Train a QMAE or QAE and write a run directory.

    Args:
        config: the options (or pass them as keywords: ``train(out="runs/a", epochs=2)``).
        out: the run directory (created; must not hold a run already: use :func:`resume`).
        progress: show a tqdm progress bar.

    Returns:
        A :class:`TrainResult` with the trained model and the per-step history.

    Raises:
        OptionError: a bad option (a ValueError, naming it as a keyword: ``lr``).
        ValueError: ``out`` is a file, already holds a run, or holds other files.
        RunLockedError: another process is writing ``out``.
    """
    memory = None
    if not isinstance(options.get("dataset", ""), str):  # tensors or a torch Dataset: kept inside the run
        memory = options.pop("dataset")
        options["dataset"] = MEMORY
    config = (config or TrainConfig()).with_options(**options)
    config.validate()
    if config.dataset == MEMORY and memory is None:
        raise OptionError(
            "{0}='memory' is how a run records tensors given to train(dataset=...); pass the tensors", "dataset"
        )
    if config.keeps_shots and config.keep_weight is None:  # record the weight used
        config = config.replace(keep_weight=config.keep_term)
    if config.init_from is not None:  # fine-tuning keeps the starting run's architecture
        base = saved_config(config.init_from).architecture
        config = config.replace(
            architecture=base.replace(
                objective=config.architecture.objective, embedding_layers=config.architecture.embedding_layers
            )
        )
    run_dir = check_new_run_dir(out)
    data = (
        memory_splits(memory, image_size=config.architecture.image_size, test_fraction=config.test_fraction)
        if memory is not None
        else None
    )
    run = _Run(config, run_dir, progress=progress, data=data)  # everything that can fail before anything is written
    identity = dataset_identity(
        config.dataset, run.data["train"], run.test_split(), root=config.data_dir, test_fraction=config.test_fraction
    )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptionError(f"cannot create {{0}} {run_dir} ({exc.strerror}); choose a writable path", "out") from None
    with writer_lock(run_dir):
        check_new_run_dir(run_dir)  # a writer that finished while we prepared
        if data is not None:
            save_memory(run_dir, data)
        ckpt.write_json(
            run_dir / ckpt.CONFIG,
            {
                "options": config.to_dict(),
                "architecture": run.model.architecture(),
                "data_source": run.train.source,
                "dataset": identity,
                "train_images": len(run.train.images),
                "versions": versions(),
            },
        )
        try:
            return run.run()
        except TrainingDiverged as exc:
            if exc.removable:  # this call created the directory and nothing in it can be resumed
                shutil.rmtree(run_dir, ignore_errors=True)
            raise


def resume(run_dir: str | os.PathLike, *, progress: bool = True, **overrides: Any) -> TrainResult:
    """Continue an interrupted run exactly where its last checkpoint left it.

    Args:
        run_dir: the run directory.
        overrides: options given again; each must equal the saved one.

    Raises:
        CheckpointError: not a run directory, an unreadable checkpoint, or a ``config.json``
            whose options are not valid.
        OptionError: an option that contradicts the saved configuration.
        RunLockedError: another process is writing the run (it is still training).
    """
    run_dir = Path(run_dir)
    saved = ckpt.load_config(run_dir)
    config = saved_config(run_dir, saved)
    logging_only = {k: overrides.pop(k) for k in NOT_FINGERPRINTED if overrides.get(k) is not None}
    config = config.with_options(**logging_only)  # e.g. --tensorboard added on resume: logs, trains the same
    for name, value in overrides.items():
        if value is not None and config.with_options(**{name: value}) != config:
            saved_value = config.to_dict()[ModelConfig.ALIASES.get(name, name)]
            raise OptionError(
                f"{{0}} {value} contradicts the saved run ({saved_value}); drop it to resume, or start a new run with "
                "--out",
                name,
            )
    with writer_lock(run_dir):
        state = ckpt.load_checkpoint(run_dir) if (run_dir / ckpt.CHECKPOINT).exists() else None
        recorded = state.get("config_sha256") if state is not None else None
        if recorded is not None and recorded != config_fingerprint(config):  # checkpoints before it have none
            raise CheckpointError(
                f"the checkpoint in {run_dir} was written under other options than {run_dir / ckpt.CONFIG} now holds "
                "(the file was edited, or the checkpoint copied from another run); restore the run's own config.json "
                "and checkpoint.pt, or start a new run with --out"
            )
        data = {"train": data_for_run(run_dir, split="train", whole=True)}  # the same images, or a one-line refusal
        if state is not None and ckpt.is_final(state):
            raise CheckpointError(
                f"{run_dir} is a finished, published run: its checkpoint keeps the weights but not the optimizer "
                f"state a resume needs; fine-tune from it with 'qmae train --init-from {run_dir} --out NEW_RUN'"
            )
        run = _Run(config, run_dir, progress=progress, data=data)
        if state is not None:
            run.restore(state)
        else:  # killed before the first checkpoint: start over from the saved options
            (run_dir / ckpt.METRICS).unlink(missing_ok=True)
        return run.run()


NOT_FINGERPRINTED = ("tensorboard",)
NOISE = "noise.json"  # a --noise run's mapped device noise
TENSORBOARD_DIR = "tensorboard"
BOARD_SCALARS = ("loss", "fidelity", "keep_probability", "lr", "images_per_s")  # metrics.jsonl keys, per step


def _summary_writer_class() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, or a one-line refusal naming the extra."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise OptionError(
            "{0} needs the tensorboard package: pip install 'qmae-qiskit[tensorboard]' (or pip install tensorboard)",
            "tensorboard",
        ) from None
    return SummaryWriter  # options that change what is logged, not what is trained


def config_fingerprint(config: TrainConfig) -> str:
    """SHA-256 of every option that shapes the training (the checkpoint records it: a resume under
    other options is refused); :data:`NOT_FINGERPRINTED` ones may change on resume."""
    options = {k: v for k, v in config.to_dict().items() if k not in NOT_FINGERPRINTED}
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()


def _checked_options(options: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        return TrainConfig.from_dict(options, where=where).to_dict()
    except OptionError as exc:
        raise CheckpointError(str(exc)) from None


ckpt.register_options_schema(_checked_options)  # config.json's options are read through TrainConfig everywhere


def saved_config(run_dir: str | os.PathLike, saved: dict[str, Any] | None = None) -> TrainConfig:
    """The :class:`TrainConfig` a run was trained with, checked.

    Raises:
        CheckpointError: ``config.json`` names an unknown option, or an option with a bad value.
    """
    saved = ckpt.load_config(run_dir) if saved is None else saved
    try:
        return TrainConfig.from_dict(saved.get("options", {}), where=f"{Path(run_dir) / ckpt.CONFIG} options")
    except OptionError as exc:
        raise ckpt.CheckpointError(str(exc)) from None
