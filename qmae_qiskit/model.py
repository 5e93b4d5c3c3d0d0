"""QMAE and its baseline QAE: parameters, mask token, fidelity, reconstruction, circuits.

One model, one file. The forward path, with shapes for a 16x16 image (n = 8 qubits):

    images (B, 16, 16), mask (B, 16, 16) bool
      -> fill_masked            token (8, 8) written into every masked patch (QAE: zeros)
      -> flatten                (B, 256) masked inputs, (B, 256) originals
      -> engine.fidelity        F (B,) = <chi| U^dag (Tr_trash U|psi><psi|U^dag (x) |0><0|) U |chi>
      -> loss                   mean(1 - F)                                   (paper Eq. 9)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from qiskit.circuit import QuantumCircuit
from torch import nn

from .angles import embedding_angles
from .checkpoint import CONFIG, CheckpointError, load_checkpoint, load_config
from .circuits.ansatz import BLOCK_PARAMETERS, all_pairs, validate_pairs
from .circuits.embedding import image_qubits
from .circuits.fidelity import (
    CIRCUIT_VARIANTS,
    RECONSTRUCTION,
    FidelityCircuit,
    fidelity_circuit,
    reconstruction_circuit,
    resolve_trash_qubits,
)
from .engines import ENGINES, make_engine
from .masking import fill_masked, num_masked_patches, parse_patch_size, random_masks

__all__ = ["QMAE", "QAE", "load_model"]


class QMAE(nn.Module):
    """Quantum masked autoencoder (Andrews and Mishra, 2025) with a learnable mask token.

    Args:
        image_size: side of the square images, a power of 2 (16 -> 8 qubits; 2..64).
        patch_size: patch ``(height, width)`` or ``"8x8"``; the token has this shape.
        mask_ratio: fraction of the image masked; a whole number of patches.
        latent_qubits: latent size ``k`` (default ``n - 1``); the trash is the highest ``n - k`` qubits.
        trash_qubits: explicit trash qubits instead of ``latent_qubits``.
        pairs: the encoder's qubit pairs (default: all ``n(n-1)/2`` pairs, as in the paper).
        engine: ``"exact"`` (batched torch, default) or ``"estimator"`` (EstimatorQNN on Aer).
        engine_options: passed to the engine (``dtype`` for exact; ``precision``, ``seed`` for estimator).
        seed: seed of the initial weights.
        init_scale: initial weights are uniform in ``[-init_scale, init_scale]``.
        token_init: initial value of every token pixel.
        embedding_layers: ``None`` (default): the exact amplitude embedding. ``L``: the approximate
            ladder embedding with ``L * (n - 1)`` CNOTs (:mod:`qmae_qiskit.approx_embedding`),
            used by :meth:`fidelity`, :meth:`reconstruct` and the circuits alike, so that what is
            evaluated (or fine-tuned) is what runs on hardware. The fit is not differentiable:
            with it, only ``theta`` receives gradients (the token stays as trained).

    Raises:
        ValueError: an image size that is not a power of 2 in 2..64, an impossible mask ratio or
            patch size, latent qubits outside ``1..n-1``, invalid pairs, or an unknown engine.
    """

    uses_token = True

    def __init__(
        self,
        *,
        image_size: int = 16,
        patch_size: str | int | Sequence[int] = (8, 8),
        mask_ratio: float = 0.25,
        latent_qubits: int | None = None,
        trash_qubits: Sequence[int] | None = None,
        pairs: Sequence[Sequence[int]] | None = None,
        engine: str = "exact",
        engine_options: dict[str, Any] | None = None,
        seed: int | None = None,
        init_scale: float = math.pi,
        token_init: float = 0.1,
        embedding_layers: int | None = None,
    ) -> None:
        super().__init__()
        self.num_qubits = image_qubits(image_size)  # validates the size
        self.image_size = image_size
        self.patch_size = parse_patch_size(patch_size)
        self.mask_ratio = float(mask_ratio)
        self.num_masked = num_masked_patches(self.mask_ratio, image_size, self.patch_size)
        self.trash_qubits = resolve_trash_qubits(self.num_qubits, latent_qubits, trash_qubits)
        self.latent_qubits = self.num_qubits - len(self.trash_qubits)
        self.pairs = validate_pairs(all_pairs(self.num_qubits) if pairs is None else pairs, self.num_qubits)
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.embedding_layers: int | None = None  # set (and validated) by set_embedding below
        self._fits: dict[tuple[int, str], Any] = {}  # LadderFit by (layers, content hash)

        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        size = BLOCK_PARAMETERS * len(self.pairs)
        self.theta = nn.Parameter((2 * torch.rand(size, generator=gen) - 1) * init_scale)  # (15 * pairs,)
        if self.uses_token:
            self.token = nn.Parameter(torch.full(self.patch_size, float(token_init)))  # (Hp, Wp)
        else:
            self.register_parameter("token", None)
        self._circuits: dict[tuple[str, bool], FidelityCircuit] = {}
        self.set_engine(engine, **(engine_options or {}))
        self.set_embedding(embedding_layers)

    # --- configuration -------------------------------------------------------------------------

    def set_engine(self, engine: str, **options: Any) -> QMAE:
        """Switch the fidelity engine (the parameters stay the same objects). Returns ``self``.

        Raises:
            ValueError: the estimator engine with an approximate embedding (not supported).
        """
        if engine != "exact" and self.embedding_layers is not None:
            raise ValueError(
                "the approximate embedding (embedding_layers) runs on the exact engine only; use engine='exact'"
            )
        self._engine = make_engine(engine, self.num_qubits, self.pairs, self.trash_qubits, **options)
        self.engine = engine
        return self

    def set_embedding(self, layers: int | None) -> QMAE:
        """Use the exact embedding (``None``) or the approximate ladder with ``layers`` CNOT layers.
        Returns ``self``.

        Raises:
            ValueError: ``layers`` not ``None`` or a positive integer, or the estimator engine.
        """
        if layers is not None and (isinstance(layers, bool) or not isinstance(layers, int) or layers < 1):
            raise ValueError(f"embedding_layers must be None (exact embedding) or a positive integer, got {layers!r}")
        if layers is not None and self.engine != "exact":
            raise ValueError(
                "the approximate embedding (embedding_layers) runs on the exact engine only; use engine='exact'"
            )
        self.embedding_layers = layers
        self._circuits.clear()
        self._fits.clear()
        return self

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this model's architecture (JSON-serializable)."""
        return {
            "model": "qmae" if self.uses_token else "qae",
            "image_size": self.image_size,
            "patch_size": list(self.patch_size),
            "mask_ratio": self.mask_ratio,
            "trash_qubits": list(self.trash_qubits),
            "pairs": [list(p) for p in self.pairs],
            **({"embedding_layers": self.embedding_layers} if self.embedding_layers is not None else {}),
        }

    @classmethod
    def load(cls, run_dir: str | os.PathLike, *, engine: str = "exact") -> QMAE:
        """The trained model of a run directory written by ``qmae train``.

        Raises:
            qmae_qiskit.checkpoint.CheckpointError: not a run directory, a corrupt checkpoint, or
                (for ``QMAE.load`` / ``QAE.load``) a run of the other kind.
        """
        return load_model(run_dir, engine=engine, expect="qmae" if cls.uses_token else "qae")

    @property
    def num_parameters(self) -> int:
        """Trainable parameters: ``15 * pairs`` (+ ``Hp * Wp`` for the token; paper Eq. 7)."""
        return sum(p.numel() for p in self.parameters())

    # --- validation ----------------------------------------------------------------------------

    def _check(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.as_tensor(images)
        mask = torch.as_tensor(mask)
        s = self.image_size
        if images.dim() != 3:
            raise ValueError(f"images must be a (batch, {s}, {s}) tensor, got shape {tuple(images.shape)}")
        if images.shape[1] != images.shape[2]:
            raise ValueError(f"images must be square, got {images.shape[1]}x{images.shape[2]}")
        if images.shape[1] != s:
            raise ValueError(
                f"this model takes {s}x{s} images, got {images.shape[1]}x{images.shape[2]}; resize them "
                "(qmae_qiskit.data does)"
            )
        if not torch.is_floating_point(images):
            images = images.float()
        if torch.isnan(images).any() or torch.isinf(images).any():
            raise ValueError("images contain NaN or inf pixels")
        if (images < 0).any():
            raise ValueError(
                "images contain negative pixels; amplitude embedding here needs pixels >= 0 (scale to [0, 1])"
            )
        empty = images.flatten(1).sum(1) == 0
        if empty.any():
            raise ValueError(
                f"image(s) {empty.nonzero().flatten().tolist()} are all zero and cannot be amplitude-embedded"
            )
        if mask.shape != images.shape:
            raise ValueError(f"mask must have the images' shape {tuple(images.shape)}, got {tuple(mask.shape)}")
        if mask.dtype != torch.bool:
            if ((mask != 0) & (mask != 1)).any():
                raise ValueError("mask must be boolean (True = masked pixel)")
            mask = mask.bool()
        return images, mask.to(images.device)

    # --- the model -----------------------------------------------------------------------------

    def random_mask(self, batch: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(batch, H, W)`` bool: ``num_masked`` random patches per image."""
        return random_masks(
            batch, self.image_size, self.patch_size, self.num_masked, generator=generator, device=self.theta.device
        )

    def fill(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The encoder's input: masked pixels replaced by the token (QAE: by 0). ``(B, H, W)``."""
        return fill_masked(images, mask, self.token)

    def fidelity(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """SWAP-test fidelity (paper Eq. 8) between the decoded masked image and the original.

        Args:
            images: ``(B, H, W)`` float pixels in [0, 1] (any non-negative scale works).
            mask: ``(B, H, W)`` bool, True where masked.

        Returns:
            ``(B,)`` fidelities, differentiable in ``theta`` and the token. A masked image with no
            lit pixel left (possible for QAE) has no quantum state and gets F = 0.

        Raises:
            ValueError: malformed images or mask (see :meth:`_check`).
        """
        return self._forward(images, mask, with_trash=False)

    def _forward(self, images: torch.Tensor, mask: torch.Tensor, *, with_trash: bool):
        images, mask = self._check(images, mask)
        masked = self.fill(images, mask).flatten(1)  # (B, 2**n)
        extra = {"with_trash": True} if with_trash else {}  # the exact engine then also returns P(trash = 0)
        return self._engine.fidelity(self.theta, self.embed(masked), self.embed(images.flatten(1)), **extra)

    def embed(self, vectors: torch.Tensor) -> torch.Tensor:
        """What the embedding prepares for ``(B, 2**n)`` pixel vectors: the vectors themselves
        (exact embedding; the engine normalizes) or the fitted ladder states (approximate).

        Fits are cached by content, so :meth:`fidelity` and :meth:`reconstruct` of the same
        images fit once.
        """
        if self.embedding_layers is None:
            return vectors
        return self._ladder_fit(vectors).states.to(vectors.device, vectors.dtype)

    def ladder_angles(self, vectors: torch.Tensor) -> torch.Tensor:
        """``(B, (L + 1) * n)`` ladder circuit angles for pixel vectors (approximate embedding)."""
        return self._ladder_fit(vectors).angles.flatten(1)

    def _ladder_fit(self, vectors: torch.Tensor):
        """The fit of these vectors, cached by content (the states for :meth:`embed` and the angles
        for the circuits come from one fit)."""
        import hashlib

        from .approx_embedding import fit_ladder

        data = vectors.detach().to("cpu", torch.float64).contiguous()
        key = (self.embedding_layers, hashlib.sha1(data.numpy().tobytes()).hexdigest())
        if key not in self._fits:
            if len(self._fits) >= 8:
                self._fits.pop(next(iter(self._fits)))
            self._fits[key] = fit_ladder(data, self.embedding_layers)
        return self._fits[key]

    def loss(self, images: torch.Tensor, mask: torch.Tensor, *, trash_weight: float = 0.0) -> torch.Tensor:
        """Mean of ``1 - F`` over the batch (paper Eq. 9), plus ``trash_weight`` times the mean
        of ``1 - P(trash = 0)`` (see :meth:`forward_loss`)."""
        return self.forward_loss(images, mask, trash_weight=trash_weight)[0]

    def forward_loss(
        self, images: torch.Tensor, mask: torch.Tensor, *, trash_weight: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss and the batch's fidelities.

        ``trash_weight = 0`` is the paper's loss, ``mean(1 - F)``. A positive weight adds
        ``trash_weight * mean(1 - P(trash = 0))``, the probability that the encoder leaves the trash
        qubits in ``|0>`` (the compression objective of Romero et al.'s quantum autoencoder, not in
        the QMAE paper): it pushes the information into the latent qubits, so the reset discards
        less and the reconstruction carries less of the trash = 1 "ghost".

        Returns:
            ``(loss, F)``: a scalar and ``(B,)``.

        Raises:
            ValueError: a negative weight, or a positive one on an engine other than exact.
        """
        if trash_weight < 0 or not math.isfinite(trash_weight):
            raise ValueError(f"trash_weight must be a finite number >= 0, got {trash_weight}")
        if trash_weight == 0:
            fid = self.fidelity(images, mask)
            return (1.0 - fid).mean(), fid
        if self.engine != "exact":
            raise ValueError("trash_weight > 0 needs the exact engine (the estimator engine measures F only)")
        fid, kept = self._forward(images, mask, with_trash=True)
        return (1.0 - fid).mean() + trash_weight * (1.0 - kept).mean(), fid

    def reconstruct(self, images: torch.Tensor, mask: torch.Tensor, *, postselect: bool = False) -> torch.Tensor:
        """The image read off the decoder's output state (always computed exactly).

        The output is mixed after the trash reset; each pixel is the square root of its
        probability (the diagonal of ``rho_out``). Unscaled: each image has unit L2 norm.

        Args:
            images: ``(B, H, W)`` in [0, 1].
            mask: ``(B, H, W)`` bool.
            postselect: instead of resetting the trash, *measure* it and keep only the trash = 0
                outcome (a pure state; on hardware, a mid-circuit measurement and discarded shots).
                Not the paper's procedure: report it separately.

        Returns:
            ``(B, H, W)``.
        """
        images, mask = self._check(images, mask)
        engine = (
            self._engine
            if self.engine == "exact"
            else make_engine("exact", self.num_qubits, self.pairs, self.trash_qubits)
        )
        probs = engine.reconstruct(self.theta, self.embed(self.fill(images, mask).flatten(1)), postselect=postselect)
        return probs.sqrt().reshape(images.shape)

    # --- circuits ------------------------------------------------------------------------------

    def template(self, variant: str = "reset", *, measure: bool = False) -> FidelityCircuit:
        """The parameterized circuit of this architecture (cached per variant): a fidelity
        variant of :data:`~qmae_qiskit.circuits.CIRCUIT_VARIANTS` (the fidelity variants and
        ``"reconstruction"``)."""
        if variant not in CIRCUIT_VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(CIRCUIT_VARIANTS)}")
        key = (variant, measure)
        if key not in self._circuits and variant == RECONSTRUCTION:
            self._circuits[key] = reconstruction_circuit(
                self.num_qubits,
                trash_qubits=self.trash_qubits,
                pairs=self.pairs,
                embedding_layers=self.embedding_layers,
            )
        if key not in self._circuits:
            self._circuits[key] = fidelity_circuit(
                self.num_qubits,
                variant=variant,
                trash_qubits=self.trash_qubits,
                pairs=self.pairs,
                measure=measure,
                embedding_layers=self.embedding_layers,
            )
        return self._circuits[key]

    def parameter_values(self, images: torch.Tensor, mask: torch.Tensor, variant: str = "reset") -> np.ndarray:
        """Values of the template's parameters, in ``template(variant).circuit.parameters`` order.

        Returns:
            ``(B, num_parameters)`` float array: one binding per image (one PUB for a sampler).
        """
        images, mask = self._check(images, mask)
        spec = self.template(variant)
        angles = embedding_angles if self.embedding_layers is None else self.ladder_angles
        with torch.no_grad():
            masked = angles(self.fill(images, mask).flatten(1).double())
            original = angles(images.flatten(1).double())
            theta = self.theta.detach().double().expand(images.shape[0], -1)
        named = torch.cat([masked, original, theta], dim=1).numpy()
        # columns of `named`: masked angles, original angles, weights (whatever the circuit uses of them)
        size = masked.shape[1]
        columns = {p: k for k, p in enumerate(spec.masked)}
        columns.update({p: size + k for k, p in enumerate(spec.original)})
        columns.update({p: 2 * size + k for k, p in enumerate(spec.weights)})
        order = [columns[p] for p in spec.circuit.parameters]
        return named[:, order]

    def circuit(
        self, image: torch.Tensor, mask: torch.Tensor, *, variant: str = "reset", measure: bool = False
    ) -> QuantumCircuit:
        """A bound fidelity circuit for one image.

        Args:
            image: ``(H, W)``.
            mask: ``(H, W)`` bool.
            variant: one of ``"paper"``, ``"reset"``, ``"destructive"``, ``"compute_uncompute"``.
            measure: add the final measurement(s) of the SWAP-test ancilla.

        Returns:
            A :class:`~qiskit.circuit.QuantumCircuit` with every parameter assigned.
        """
        image, mask = torch.as_tensor(image), torch.as_tensor(mask)
        spec = self.template(variant, measure=measure)
        values = self.parameter_values(image[None], mask[None], variant)[0]
        return spec.circuit.assign_parameters(dict(zip(spec.circuit.parameters, values)))


class QAE(QMAE):
    """The paper's baseline: the same circuit, masked pixels set to 0 and no token."""

    uses_token = False


def load_model(run_dir: str | os.PathLike, *, engine: str = "exact", expect: str | None = None) -> QMAE:
    """Rebuild the trained model of a run directory (a :class:`QMAE` or a :class:`QAE`).

    Args:
        run_dir: a directory written by ``qmae train``.
        engine: the engine to attach.
        expect: ``"qmae"`` or ``"qae"`` to insist on a kind.

    Raises:
        CheckpointError: not a run directory, a corrupt checkpoint, or the wrong model kind.
    """
    config = load_config(run_dir)
    arch = config.get("architecture")
    if not arch:
        raise CheckpointError(f"{run_dir}/{CONFIG} has no 'architecture' entry")
    kind = arch["model"]
    if expect is not None and kind != expect:
        raise CheckpointError(f"{run_dir} holds a {kind.upper()} model, not a {expect.upper()}")
    cls = QMAE if kind == "qmae" else QAE
    model = cls(
        image_size=arch["image_size"],
        patch_size=tuple(arch["patch_size"]),
        mask_ratio=arch["mask_ratio"],
        trash_qubits=arch["trash_qubits"],
        pairs=arch["pairs"],
        engine=engine,
        embedding_layers=arch.get("embedding_layers"),
    )
    state = load_checkpoint(run_dir)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint in {run_dir} does not match its config: {exc}") from exc
    return model
