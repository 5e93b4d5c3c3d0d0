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
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from .circuits.ansatz import named_pairs
from .circuits.embedding import image_qubits
from .data import ImageSet
from .datasets import MEMORY, dataset_identity, load_dataset, memory_splits, save_memory, take
from .engines import ENGINES
from .evaluation import evaluate
from .figures import save_loss_plot
from .model import OBJECTIVES, QAE, QMAE, load_model
from .runs import check_new_run_dir, data_for_run, saved_evaluation_masks, versions, writer_lock

__all__ = ["TrainConfig", "TrainResult", "train", "resume"]

SCHEDULES = ("constant", "cosine")
# The acceptance term's default weight with --objective postselect, chosen on held-out training
# images (docs/study.md, "Choosing the keep weight").
DEFAULT_KEEP_WEIGHT = 0.05


@dataclass
class TrainConfig:
    """Every option of a training run (saved as ``config.json``; ``qmae train`` flags).

    Attributes:
        model: ``"qmae"`` (learnable token) or ``"qae"`` (zeros, the baseline).
        image_size, patch_size, mask_ratio, latent_qubits: the architecture.
        pairs: the encoder's pair set: ``"all"`` (the paper's 28 pairs at n = 8), ``"line"`` or
            ``"line2"`` (neighbours on a line, once or twice: hardware-friendly, no routing).
        engine: ``"exact"`` or ``"estimator"``.
        epochs, batch_size, lr, schedule: the optimization (Adam; ``"cosine"`` or ``"constant"``).
        seed: seeds the weights, the data order and the masks.
        limit: train on the first ``limit`` images (class-balanced).
        data_dir, download: where the images come from (see :mod:`qmae_qiskit.data`).
        checkpoint_every: also checkpoint every this many steps (0: at epoch ends only).
        eval_limit: held-out images scored after each epoch (0 to skip).
        device: torch device of the exact engine (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
        embedding_layers: train with the approximate ladder embedding hardware runs (``L * (n - 1)``
            CNOTs; :mod:`qmae_qiskit.approx_embedding`). Each step fits the batch's ladders
            (seconds per step): meant for fine-tuning a trained run on a few thousand images.
        init_from: start from this run's weights and token (fine-tuning); the architecture is
            that run's, and the architecture options here are ignored.
        trash_weight: weight of the compression term ``mean(1 - P(trash = 0))`` added to the
            paper's loss (0, the default, is the paper's loss; see :meth:`QMAE.loss_terms`).
        objective: ``"reset"`` (the paper's: the trash is reset, loss ``1 - F``) or
            ``"postselect"`` (the trash is measured and the shots where it reads 0 kept; loss
            ``1 - F_ps`` plus the acceptance term).
        keep_weight: with ``objective="postselect"``, the weight of ``mean(1 - P(keep))`` in the
            loss, which holds the kept fraction up (``None``: :data:`DEFAULT_KEEP_WEIGHT`).
        layers, decoder, token, ansatz: architecture knobs of :class:`~qmae_qiskit.QMAE`
            (``token`` is its ``tokens``: ``"shared"`` or ``"per-patch"``).
        holdout: keep the last ``holdout`` training images out of training, to choose options on
            them without touching the test split (:func:`~qmae_qiskit.runs.data_for_run` with
            ``split="holdout"`` reads them back).
        dataset: the images (:mod:`qmae_qiskit.datasets`): ``"mnist"``, ``"fashion-mnist"``,
            ``"kmnist"``, ``"emnist-digits"``, ``"cifar10-gray"``, ``"folder:PATH"``; from
            Python also tensors or a torch ``Dataset`` (recorded as ``"memory"`` and kept in the run).
        test_fraction: the share of a folder's (or tensors') images that forms the test split
            when there are no ``train`` / ``test`` sub-folders.
        skip_unreadable: skip a folder's files Pillow cannot read instead of refusing them.
    """

    model: str = "qmae"
    image_size: int = 16
    patch_size: str = "8x8"
    mask_ratio: float = 0.25
    latent_qubits: int | None = None
    pairs: str = "all"
    engine: str = "exact"
    epochs: int = 3
    batch_size: int = 32  # best fidelity per minute (docs/batch_size.md)
    lr: float = 0.02
    schedule: str = "cosine"
    seed: int = 0
    limit: int | None = None
    data_dir: str | None = None
    download: bool = False
    checkpoint_every: int = 0
    eval_limit: int = 1000
    device: str = "cpu"
    embedding_layers: int | None = None
    init_from: str | None = None
    trash_weight: float = 0.0
    objective: str = "reset"
    keep_weight: float | None = None
    layers: int = 1
    decoder: str = "tied"
    token: str = "shared"
    ansatz: str = "blocks"
    holdout: int = 0
    dataset: str = "mnist"
    test_fraction: float = 0.2
    skip_unreadable: bool = False

    @property
    def keep_term(self) -> float:
        """The acceptance term's weight in the loss (0 unless post-selected)."""
        if self.objective != "postselect":
            return 0.0
        return DEFAULT_KEEP_WEIGHT if self.keep_weight is None else float(self.keep_weight)

    def validate(self) -> None:
        """Check the optimisation and run options; raise ``ValueError`` naming the first bad one.

        The architecture options (image and patch size, mask ratio, latent qubits, pairs) are
        checked where they are used, by building the model (:meth:`build_model`).
        """
        if self.model not in ("qmae", "qae"):
            raise ValueError(f"--model must be 'qmae' or 'qae', got {self.model!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ValueError(f"--lr must be a positive number, got {self.lr}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"--limit must be a positive number of images, got {self.limit}")
        if self.holdout < 0:
            raise ValueError(f"--holdout must be a number of images >= 0, got {self.holdout}")
        if not isinstance(self.dataset, str):
            raise ValueError("--dataset is a name here; pass tensors or a Dataset to train(dataset=...) directly")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"--test-fraction must be between 0 and 1, got {self.test_fraction}")
        if self.checkpoint_every < 0 or self.eval_limit < 0:
            raise ValueError("--checkpoint-every and --eval-limit must be >= 0")
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ValueError(f"--device must be a torch device such as cpu or cuda, got {self.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda but torch sees no CUDA GPU here; use --device cpu")
        if device.type != "cpu" and self.engine != "exact":
            raise ValueError(f"--device {self.device} needs --engine exact (the estimator engine runs on Aer)")
        if self.embedding_layers is not None and (self.embedding_layers < 1 or self.engine != "exact"):
            raise ValueError(
                f"--embedding-layers must be a positive integer and needs --engine exact, got {self.embedding_layers} "
                f"with {self.engine}"
            )
        if not (self.trash_weight >= 0 and math.isfinite(self.trash_weight)):
            raise ValueError(f"--trash-weight must be a number >= 0, got {self.trash_weight}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.keep_weight is not None and not (self.keep_weight >= 0 and math.isfinite(self.keep_weight)):
            raise ValueError(f"--keep-weight must be a number >= 0, got {self.keep_weight}")
        if self.keep_weight is not None and self.objective != "postselect":
            raise ValueError("--keep-weight holds the kept fraction of --objective postselect; add that, or drop it")
        if self.trash_weight > 0 and self.objective == "postselect":
            raise ValueError(
                "--trash-weight is the reset objective's compression term; with --objective postselect the same term "
                "is the acceptance term: use --keep-weight"
            )
        if self.ansatz == "unitary" and self.engine != "exact":
            raise ValueError("--ansatz unitary is a bound computed by the exact engine only; use --engine exact")
        if self.ansatz == "unitary" and self.pairs != "all":
            raise ValueError("--ansatz unitary is a general unitary, it has no pairs; drop --pairs")
        if self.init_from is not None and not (Path(self.init_from) / ckpt.CHECKPOINT).is_file():
            raise ValueError(
                f"--init-from {self.init_from} is not a trained run directory (no {ckpt.CHECKPOINT}); give a directory"
                " written by qmae train"
            )

    def build_model(self) -> QMAE:
        """A freshly initialized model for these options (or the ``init_from`` run's model).

        Raises:
            ValueError: an impossible architecture (the model's own checks).
        """
        if self.init_from is not None:  # its architecture, this run's objective and embedding
            model = load_model(self.init_from, engine=self.engine).set_embedding(self.embedding_layers)
            model.objective = self.objective
            return model
        cls = QMAE if self.model == "qmae" else QAE
        blocks = self.ansatz == "blocks"
        return cls(
            embedding_layers=self.embedding_layers,
            image_size=self.image_size,
            patch_size=self.patch_size,
            mask_ratio=self.mask_ratio,
            latent_qubits=self.latent_qubits,
            pairs=named_pairs(self.pairs, image_qubits(self.image_size)) if blocks else None,
            layers=self.layers,
            decoder=self.decoder,
            tokens=self.token,
            ansatz=self.ansatz,
            objective=self.objective,
            engine=self.engine,
            seed=self.seed,
        )


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
        image_size=config.image_size,
        test_fraction=config.test_fraction,
        skip_unreadable=config.skip_unreadable,
    )


class _StopFlag:
    """SIGINT handling for the duration of a run (main thread only; elsewhere Ctrl-C is default).

    The first Ctrl-C only raises a flag: the step in flight finishes and the run saves at that
    step boundary. A second one stops at once, but never inside a save (``shield``): the
    checkpoint only ever holds a completed step.
    """

    def __init__(self) -> None:
        self.raised = False
        self.shielded = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.raised and not self.shielded:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.raised = True

    @contextlib.contextmanager
    def shield(self):
        """Ctrl-C is recorded but does not interrupt the block (a checkpoint being written)."""
        self.shielded = True
        try:
            yield
        finally:
            self.shielded = False

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


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
        # the splits, whole: given (tensors from Python), or loaded; the run records their fingerprints
        self.data = data or {"train": _load_data(config, "train")}
        self.train = take(self.data["train"], config.limit)
        if config.holdout:  # the last images stay out of training, for choosing options (never the test split)
            if config.holdout >= len(self.train.images):
                raise ValueError(
                    f"--holdout {config.holdout} leaves no training images out of {len(self.train.images)}"
                )
            labels = self.train.labels
            self.train = self.train._replace(
                images=self.train.images[: -config.holdout],
                labels=None if labels is None else labels[: -config.holdout],
            )
        if len(self.train.images) < config.batch_size:
            raise ValueError(
                f"{len(self.train.images)} training images but --batch-size {config.batch_size}: ask for a batch of "
                f"at most {len(self.train.images)} or train on more images"
            )
        self.steps_per_epoch = math.ceil(len(self.train.images) / config.batch_size)
        self.epoch, self.step, self.perm = 0, 0, None
        self.history: list[dict[str, Any]] = []
        self.eval_fidelity: float | None = None

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
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
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
        total = cfg.epochs * self.steps_per_epoch
        metrics = open(self.run_dir / ckpt.METRICS, "a")
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
                self._save_shielded()
        except KeyboardInterrupt:
            bar.close()
            if self.boundary:
                self._save_shielded()
                message = "interrupted; checkpoint saved"
            else:  # a second Ctrl-C inside a step: the last checkpoint (a completed step) stands
                message = "interrupted mid-step; the last checkpoint stands (its steps are redone on resume)"
            raise KeyboardInterrupt(f"{message}. Continue with: qmae train --resume {self.run_dir}") from None
        finally:
            self.stop.restore()
            metrics.close()
            bar.close()
        save_loss_plot(
            self.history, self.run_dir / "loss.png", title=f"{cfg.model.upper()} training loss", ylabel="1 - fidelity"
        )
        return TrainResult(self.model, self.history, self.run_dir, self.eval_fidelity)

    def _save_shielded(self) -> None:
        with self.stop.shield():
            self.save()

    def _step(self, total: int) -> dict[str, Any]:
        """One Adam step; returns its metrics record. Between its first change of the state (the
        generator draws) and the record appended to the history, the state is mid-step."""
        cfg, images = self.config, self.train.images
        self.boundary = False
        if self.perm is None:
            self.perm = torch.randperm(len(images), generator=self.generator)
        t0 = time.perf_counter()
        idx = self.perm[self.step * cfg.batch_size : (self.step + 1) * cfg.batch_size]
        batch = images[idx].to(self.device)
        # the masks are drawn on the CPU: the same masks on any device
        mask = self.model.random_mask(len(idx), generator=self.generator).to(self.device)
        global_step = self.epoch * self.steps_per_epoch + self.step
        lr = _lr_at(cfg, global_step, total)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        terms = self.model.loss_terms(batch, mask, trash_weight=cfg.trash_weight, keep_weight=cfg.keep_term)
        self.optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        self.optimizer.step()
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
        if cfg.objective == "postselect":
            record["keep_probability"] = terms.kept.mean().item()
        self.history.append(record)
        return record

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
        ValueError: a bad option; ``out`` is a file, already holds a run, or holds other files.
        RunLockedError: another process is writing ``out``.
    """
    memory = None
    if not isinstance(options.get("dataset", ""), str):  # tensors or a torch Dataset: kept inside the run
        memory = options.pop("dataset")
        options["dataset"] = MEMORY
    config = dataclasses.replace(config or TrainConfig(), **options)
    config.validate()
    if config.dataset == MEMORY and memory is None:
        raise ValueError("dataset='memory' is how a run records tensors given to train(dataset=...); pass the tensors")
    if config.objective == "postselect" and config.keep_weight is None:  # record the weight used, not "default"
        config = dataclasses.replace(config, keep_weight=config.keep_term)
    if config.init_from is not None:  # fine-tuning keeps the starting run's architecture and data size
        base = ckpt.load_config(config.init_from)
        architecture = ("model", "image_size", "patch_size", "mask_ratio", "latent_qubits", "pairs")
        architecture += ("layers", "decoder", "token", "ansatz")
        kept = {k: base["options"][k] for k in architecture if k in base["options"]}
        config = dataclasses.replace(config, **kept)
    run_dir = check_new_run_dir(out)
    data = (
        memory_splits(memory, image_size=config.image_size, test_fraction=config.test_fraction)
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
        raise ValueError(f"cannot create --out {run_dir} ({exc.strerror}); choose a writable path") from None
    with writer_lock(run_dir):
        check_new_run_dir(run_dir)  # a writer that finished while we prepared
        if data is not None:
            save_memory(run_dir, data)
        ckpt.write_json(
            run_dir / ckpt.CONFIG,
            {
                "options": dataclasses.asdict(config),
                "architecture": run.model.config(),
                "data_source": run.train.source,
                "dataset": identity,
                "train_images": len(run.train.images),
                "versions": versions(),
            },
        )
        return run.run()


def resume(run_dir: str | os.PathLike, *, progress: bool = True, **overrides: Any) -> TrainResult:
    """Continue an interrupted run exactly where its last checkpoint left it.

    Args:
        run_dir: the run directory.
        overrides: options given again; each must equal the saved one.

    Raises:
        CheckpointError: not a run directory, an unreadable checkpoint, or a ``config.json``
            whose options are not valid.
        ValueError: an option that contradicts the saved configuration.
        RunLockedError: another process is writing the run (it is still training).
    """
    run_dir = Path(run_dir)
    saved = ckpt.load_config(run_dir)
    config = saved_config(run_dir, saved)
    for name, value in overrides.items():
        if value is not None and getattr(config, name) != value:
            raise ValueError(
                f"--{name.replace('_', '-')} {value} contradicts the saved run ({getattr(config, name)}); drop it to "
                "resume, or start a new run with --out"
            )
    with writer_lock(run_dir):
        state = ckpt.load_checkpoint(run_dir) if (run_dir / ckpt.CHECKPOINT).exists() else None
        data = {"train": data_for_run(run_dir, split="train", whole=True)}  # the same images, or a one-line refusal
        run = _Run(config, run_dir, progress=progress, data=data)
        if state is not None:
            run.restore(state)
        else:  # killed before the first checkpoint: start over from the saved options
            (run_dir / ckpt.METRICS).unlink(missing_ok=True)
        return run.run()


def saved_config(run_dir: str | os.PathLike, saved: dict[str, Any] | None = None) -> TrainConfig:
    """The :class:`TrainConfig` a run was trained with, checked.

    Raises:
        CheckpointError: ``config.json`` names an unknown option, or an option with a bad value.
    """
    saved = ckpt.load_config(run_dir) if saved is None else saved
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(saved["options"]) - known)
    if unknown:
        raise ckpt.CheckpointError(
            f"{Path(run_dir) / ckpt.CONFIG} holds unknown options {unknown} (written by another version of "
            "qmae-qiskit?); remove them or train a new run"
        )
    config = TrainConfig(**saved["options"])
    try:
        config.validate()
    except ValueError as exc:
        raise ckpt.CheckpointError(f"{Path(run_dir) / ckpt.CONFIG} holds an invalid option: {exc}") from None
    return config
