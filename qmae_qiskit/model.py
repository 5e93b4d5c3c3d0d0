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
from pathlib import Path
from typing import Any, NamedTuple

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
    DECODERS,
    RECONSTRUCTION,
    RECONSTRUCTION_POSTSELECT,
    FidelityCircuit,
    fidelity_circuit,
    reconstruction_circuit,
    resolve_trash_qubits,
)
from .engines import ENGINES, Branches, make_engine
from .engines.exact import ANSATZES
from .masking import fill_masked, num_masked_patches, parse_patch_size, patch_grid, random_masks

MAX_UNITARY_QUBITS = 10  # a dense 1024 x 1024 matrix exponential per step

__all__ = ["QMAE", "QAE", "OBJECTIVES", "TOKENS", "LossTerms", "load_model"]


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


OBJECTIVES = ("reset", "postselect")


class LossTerms(NamedTuple):
    """What one training step computes: ``loss`` (scalar), ``fidelity`` and ``kept`` (``(B,)``)."""

    loss: torch.Tensor
    fidelity: torch.Tensor
    kept: torch.Tensor


TOKENS = ("shared", "per-patch")


class QMAE(nn.Module):
    """Quantum masked autoencoder (Andrews and Mishra, 2025) with a learnable mask token.

    Args:
        image_size: side of the square images, a power of 2 (16 -> 8 qubits; 2..64).
        patch_size: patch ``(height, width)`` or ``"8x8"``; the token has this shape.
        mask_ratio: fraction of the image masked; a whole number of patches.
        latent_qubits: latent size ``k`` (default ``n - 1``); the trash is the highest ``n - k`` qubits.
        trash_qubits: explicit trash qubits instead of ``latent_qubits``.
        pairs: the encoder's qubit pairs (default: all ``n(n-1)/2`` pairs, as in the paper).
        layers: repetitions of the pair layer, each with its own weights (``15 * len(pairs) *
            layers`` encoder weights).
        decoder: ``"tied"`` (``U(theta)^dagger``, the paper's) or ``"untied"`` (an independent
            decoder ``V(phi)^dagger`` of the same form, initialized equal to the encoder).
        tokens: ``"shared"`` (one token for every patch, the paper's) or ``"per-patch"`` (one token
            per patch position). QAE has no token.
        ansatz: ``"blocks"`` (the paper's two-qubit blocks) or ``"unitary"``: a general unitary
            ``exp(K)`` (exact engine only, n <= 10). Not a circuit: training it bounds what any
            circuit of this architecture could reach (the "ceiling").
        objective: how the trash is handled at inference, and so what :meth:`fidelity` and
            :meth:`reconstruct` return by default: ``"reset"`` (the paper's) or ``"postselect"``
            (measure the trash, keep the shots where it reads 0).
        engine: ``"exact"`` (batched torch, default) or ``"estimator"`` (EstimatorQNN on Aer).
        engine_options: passed to the engine (``dtype`` for exact; ``precision``, ``seed``,
            ``gradient`` for estimator).
        seed: seed of the initial weights.
        init_scale: initial block weights are uniform in ``[-init_scale, init_scale]`` (the
            unitary ansatz starts near the identity instead).
        token_init: initial value of every token pixel.
        embedding_layers: ``None`` (default): the exact amplitude embedding. ``L``: the approximate
            ladder embedding with ``L * (n - 1)`` CNOTs (:mod:`qmae_qiskit.approx_embedding`),
            used by :meth:`fidelity`, :meth:`reconstruct` and the circuits alike, so that what is
            evaluated (or fine-tuned) is what runs on hardware. The fit is not differentiable:
            with it, only the weights receive gradients (the token stays as trained).

    Raises:
        ValueError: an image size that is not a power of 2 in 2..64, an impossible mask ratio or
            patch size, latent qubits outside ``1..n-1``, invalid pairs, an unknown engine,
            decoder, token layout, ansatz or objective, or a combination that does not exist
            (the unitary ansatz on the estimator engine or above 10 qubits; tokens for QAE).
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
        layers: int = 1,
        decoder: str = "tied",
        tokens: str = "shared",
        ansatz: str = "blocks",
        objective: str = "reset",
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
        _check_choice("decoder", decoder, DECODERS)
        _check_choice("tokens", tokens, TOKENS)
        _check_choice("ansatz", ansatz, ANSATZES)
        _check_choice("objective", objective, OBJECTIVES)
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise ValueError(f"layers must be a positive integer, got {layers!r}")
        if ansatz == "unitary" and self.num_qubits > MAX_UNITARY_QUBITS:
            raise ValueError(
                f"the unitary ansatz is a dense 2^n x 2^n matrix: n <= {MAX_UNITARY_QUBITS} (images up to "
                f"{2 ** (MAX_UNITARY_QUBITS // 2)}x{2 ** (MAX_UNITARY_QUBITS // 2)}), got n = {self.num_qubits}"
            )
        if ansatz == "unitary" and (layers != 1 or pairs is not None):
            raise ValueError("the unitary ansatz has no pairs or layers: it is a general unitary; drop them")
        if not self.uses_token and tokens != "shared":
            raise ValueError("QAE has no mask token (masked pixels are zeros): drop tokens=")
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.layers, self.decoder, self.tokens, self.ansatz, self.objective = layers, decoder, tokens, ansatz, objective
        self.encoder_pairs = self.pairs * layers  # layer l's blocks are encoder_pairs[l * len(pairs):]
        self.embedding_layers: int | None = None  # set (and validated) by set_embedding below
        self._fits: dict[tuple[int, str], Any] = {}  # LadderFit by (layers, content hash)

        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        if ansatz == "unitary":  # near the identity: K = A - A^dagger small
            dim = 2**self.num_qubits
            theta = 0.01 * torch.randn(2, dim, dim, generator=gen)
        else:
            theta = (2 * torch.rand(BLOCK_PARAMETERS * len(self.encoder_pairs), generator=gen) - 1) * init_scale
        self.theta = nn.Parameter(theta)  # (15 * pairs * layers,) or (2, 2**n, 2**n)
        # the untied decoder starts where the tied model starts (V = U) and trains apart from it
        self.decoder_theta = nn.Parameter(theta.clone()) if decoder == "untied" else None
        if self.uses_token:
            rows, cols = patch_grid(image_size, self.patch_size)
            shape = self.patch_size if tokens == "shared" else (rows * cols, *self.patch_size)
            self.token = nn.Parameter(torch.full(shape, float(token_init)))  # (Hp, Wp) or (P, Hp, Wp)
        else:
            self.register_parameter("token", None)
        self._circuits: dict[tuple[str, bool], FidelityCircuit] = {}
        self.set_engine(engine, **(engine_options or {}))
        self.set_embedding(embedding_layers)

    # --- configuration -------------------------------------------------------------------------

    def set_engine(self, engine: str, **options: Any) -> QMAE:
        """Switch the fidelity engine (the parameters stay the same objects). Returns ``self``.

        Raises:
            ValueError: the estimator engine with an approximate embedding or the unitary ansatz.
        """
        if engine != "exact" and self.embedding_layers is not None:
            raise ValueError(
                "the approximate embedding (embedding_layers) runs on the exact engine only; use engine='exact'"
            )
        if engine != "exact" and self.ansatz == "unitary":
            raise ValueError("the unitary ansatz is a bound computed by the exact engine only; use engine='exact'")
        if engine == "exact":
            options.setdefault("ansatz", self.ansatz)
        else:
            options.setdefault("decoder", self.decoder)
        self._engine = make_engine(engine, self.num_qubits, self.encoder_pairs, self.trash_qubits, **options)
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
        """The constructor arguments that rebuild this model's architecture (JSON-serializable).
        Options at their default (the paper's) are left out, so older runs read back unchanged."""
        knobs = {"layers": 1, "decoder": "tied", "tokens": "shared", "ansatz": "blocks", "objective": "reset"}
        return {
            "model": "qmae" if self.uses_token else "qae",
            "image_size": self.image_size,
            "patch_size": list(self.patch_size),
            "mask_ratio": self.mask_ratio,
            "trash_qubits": list(self.trash_qubits),
            "pairs": [list(p) for p in self.pairs],
            **{k: getattr(self, k) for k, default in knobs.items() if getattr(self, k) != default},
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
        """Trainable parameters: ``15 * pairs * layers`` (twice when untied; + the token's pixels)."""
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
        if images.shape[0] == 0:
            raise ValueError(f"images is an empty batch (shape {tuple(images.shape)}); pass at least one image")
        if images.dtype == torch.uint8:
            raise ValueError("images are uint8 (0-255); pass float pixels in [0, 1] (images / 255)")
        if not torch.is_floating_point(images):
            images = images.float()
        if torch.isnan(images).any() or torch.isinf(images).any():
            raise ValueError("images contain NaN or inf pixels")
        if (images > 1 + 1e-6).any():
            # the token and every default live on the [0, 1] scale: 0-255 pixels would silently change the fill
            raise ValueError(
                f"images have pixels above 1 (max {images.max().item():g}); pixels are in [0, 1]: divide by 255 "
                "(qmae_qiskit.data.resize does)"
            )
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
        """``(batch, H, W)`` bool: ``num_masked`` random patches per image.

        Raises:
            ValueError: ``batch`` is not a non-negative integer.
        """
        return random_masks(
            batch, self.image_size, self.patch_size, self.num_masked, generator=generator, device=self.theta.device
        )

    def fill(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The encoder's input: masked pixels replaced by the token (QAE: by 0). ``(B, H, W)``."""
        return fill_masked(images, mask, self.token)

    def _postselect(self, postselect: bool | None) -> bool:
        return self.objective == "postselect" if postselect is None else bool(postselect)

    def branches(self, images: torch.Tensor, mask: torch.Tensor) -> Branches:
        """Everything one forward pass gives per image: the reset fidelity, the joint probability
        of keeping a shot and passing, and the kept fraction ``P(trash = 0)``
        (:class:`~qmae_qiskit.engines.Branches`), differentiable in the weights and the token.

        Raises:
            ValueError: malformed images or mask (see :meth:`_check`).
        """
        images, mask = self._check(images, mask)
        masked = self.fill(images, mask).flatten(1)  # (B, 2**n)
        return self._engine.branches(
            self.theta, self.embed(masked), self.embed(images.flatten(1)), decoder=self.decoder_theta
        )

    def fidelity(self, images: torch.Tensor, mask: torch.Tensor, *, postselect: bool | None = None) -> torch.Tensor:
        """The fidelity between the decoded masked image and the original (paper Eq. 8).

        Args:
            images: ``(B, H, W)`` float pixels in [0, 1].
            mask: ``(B, H, W)`` bool, True where masked.
            postselect: ``False``: the trash is reset (the paper's SWAP-test fidelity); ``True``:
                the trash is measured and only the shots where it reads 0 are kept, and this is
                the fidelity of those shots, ``|<eta_0|phi_0>|^2 / P(keep)``; ``None`` (default):
                the model's own ``objective``.

        Returns:
            ``(B,)`` fidelities, differentiable in the weights and the token. A masked image with
            no lit pixel left (possible for QAE) has no quantum state and gets F = 0.

        Raises:
            ValueError: malformed images or mask (see :meth:`_check`).
        """
        b = self.branches(images, mask)
        return b.postselected if self._postselect(postselect) else b.fidelity

    def keep_probability(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B,)`` probability that the trash reads 0: the fraction of shots post-selection keeps."""
        return self.branches(images, mask).kept

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

    def loss(
        self, images: torch.Tensor, mask: torch.Tensor, *, trash_weight: float = 0.0, keep_weight: float = 0.0
    ) -> torch.Tensor:
        """The training loss (see :meth:`forward_loss`)."""
        return self.forward_loss(images, mask, trash_weight=trash_weight, keep_weight=keep_weight)[0]

    def forward_loss(
        self, images: torch.Tensor, mask: torch.Tensor, *, trash_weight: float = 0.0, keep_weight: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, F)``: the first two of :meth:`loss_terms`."""
        terms = self.loss_terms(images, mask, trash_weight=trash_weight, keep_weight=keep_weight)
        return terms.loss, terms.fidelity

    def loss_terms(
        self, images: torch.Tensor, mask: torch.Tensor, *, trash_weight: float = 0.0, keep_weight: float = 0.0
    ) -> LossTerms:
        """The training loss, the batch's fidelities under the model's objective, and ``P(keep)``.

        ``objective="reset"``: ``mean(1 - F)``, the paper's loss (Eq. 9). A positive
        ``trash_weight`` adds ``trash_weight * mean(1 - P(trash = 0))``, the compression objective
        of Romero et al.'s quantum autoencoder (not in the QMAE paper): it pushes the information
        into the latent qubits, so the reset discards less and the reconstruction carries less of
        the trash = 1 "ghost".

        ``objective="postselect"``: ``mean(1 - F_ps)`` on the kept shots, plus ``keep_weight *
        mean(1 - P(keep))``: without it the model learns to keep fewer shots (the fidelity of the
        few it keeps rises), which on hardware costs shots and makes the filled patch less
        readable; the weight holds the acceptance rate up.

        Returns:
            :class:`LossTerms`: the scalar loss, ``(B,)`` fidelities, ``(B,)`` ``P(trash = 0)``.

        Raises:
            ValueError: a negative or non-finite weight, or the weight of the other objective.
        """
        for name, weight in (("trash_weight", trash_weight), ("keep_weight", keep_weight)):
            if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {weight!r}")
        postselect = self.objective == "postselect"
        if postselect and trash_weight:
            raise ValueError("trash_weight is the reset objective's term; with post-selection use keep_weight")
        if not postselect and keep_weight:
            raise ValueError(
                "keep_weight holds the acceptance rate of objective='postselect'; with reset use trash_weight"
            )
        b = self.branches(images, mask)
        fid = b.postselected if postselect else b.fidelity
        weight = keep_weight if postselect else trash_weight
        loss = (1.0 - fid).mean()
        if weight:
            loss = loss + weight * (1.0 - b.kept).mean()
        return LossTerms(loss, fid, b.kept)

    def reconstruct(self, images: torch.Tensor, mask: torch.Tensor, *, postselect: bool | None = None) -> torch.Tensor:
        """The image read off the decoder's output state (always computed exactly).

        With the trash reset the output is mixed; each pixel is the square root of its
        probability (the diagonal of ``rho_out``). Unscaled: each image has unit L2 norm.

        Args:
            images: ``(B, H, W)`` in [0, 1].
            mask: ``(B, H, W)`` bool.
            postselect: ``True``: measure the trash and keep only the trash = 0 outcome (a pure
                state; on hardware, a mid-circuit measurement and discarded shots); ``False``:
                reset it; ``None`` (default): the model's own ``objective``.

        Returns:
            ``(B, H, W)``.
        """
        images, mask = self._check(images, mask)
        engine = self._engine if self.engine == "exact" else self._exact_engine()
        probs = engine.reconstruct(
            self.theta,
            self.embed(self.fill(images, mask).flatten(1)),
            postselect=self._postselect(postselect),
            decoder=self.decoder_theta,
        )
        return probs.sqrt().reshape(images.shape)

    def _exact_engine(self):
        if getattr(self, "_exact", None) is None:
            self._exact = make_engine(
                "exact", self.num_qubits, self.encoder_pairs, self.trash_qubits, ansatz=self.ansatz
            )
        return self._exact

    # --- circuits ------------------------------------------------------------------------------

    def template(self, variant: str = "reset", *, measure: bool = False) -> FidelityCircuit:
        """The parameterized circuit of this architecture (cached per variant): one of
        :data:`~qmae_qiskit.circuits.CIRCUIT_VARIANTS` (the fidelity variants, post-selected ones
        included, and the reconstruction circuits).

        Raises:
            ValueError: an unknown variant, or the unitary ansatz (a bound, not a circuit).
        """
        if variant not in CIRCUIT_VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(CIRCUIT_VARIANTS)}")
        if self.ansatz == "unitary":
            raise ValueError("the unitary ansatz is a bound on what circuits can do, not a circuit: it has no template")
        key = (variant, measure)
        if key not in self._circuits:
            common = dict(
                trash_qubits=self.trash_qubits,
                pairs=self.encoder_pairs,
                embedding_layers=self.embedding_layers,
                decoder=self.decoder,
            )
            if variant in (RECONSTRUCTION, RECONSTRUCTION_POSTSELECT):
                spec = reconstruction_circuit(
                    self.num_qubits, postselect=variant == RECONSTRUCTION_POSTSELECT, **common
                )
            else:
                spec = fidelity_circuit(self.num_qubits, variant=variant, measure=measure, **common)
            self._circuits[key] = spec
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
            weights = [self.theta] + ([self.decoder_theta] if self.decoder_theta is not None else [])
            weights = torch.cat([w.detach().double() for w in weights]).expand(images.shape[0], -1)
        named = torch.cat([masked, original, weights], dim=1).numpy()
        # columns of `named`: masked angles, original angles, weights (whatever the circuit uses of them)
        size = masked.shape[1]
        columns = {p: k for k, p in enumerate(spec.masked)}
        columns.update({p: size + k for k, p in enumerate(spec.original)})
        columns.update({p: 2 * size + k for k, p in enumerate(spec.weight_parameters)})
        order = [columns[p] for p in spec.circuit.parameters]
        return named[:, order]

    def circuit(
        self, image: torch.Tensor, mask: torch.Tensor, *, variant: str = "reset", measure: bool = False
    ) -> QuantumCircuit:
        """A bound fidelity circuit for one image.

        Args:
            image: ``(H, W)``.
            mask: ``(H, W)`` bool.
            variant: a fidelity variant (:data:`~qmae_qiskit.circuits.VARIANTS`) or a reconstruction.
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
    arch = config["architecture"]
    kind = arch["model"]
    if expect is not None and kind != expect:
        raise CheckpointError(f"{run_dir} holds a {kind.upper()} model, not a {expect.upper()}")
    cls = QMAE if kind == "qmae" else QAE
    knobs = {k: arch[k] for k in ("layers", "decoder", "tokens", "ansatz", "objective") if k in arch}
    try:
        model = cls(
            image_size=arch["image_size"],
            patch_size=tuple(arch["patch_size"]),
            mask_ratio=arch["mask_ratio"],
            trash_qubits=arch["trash_qubits"],
            pairs=None if arch.get("ansatz") == "unitary" else arch["pairs"],
            engine=engine,
            embedding_layers=arch.get("embedding_layers"),
            **knobs,
        )
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{Path(run_dir) / CONFIG} describes no valid model: {exc}") from None
    state = load_checkpoint(run_dir)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0] if first else ""
        raise CheckpointError(
            f"the checkpoint in {run_dir} does not match its config.json ({detail}); were they copied from "
            "different runs?"
        ) from None
    return model
