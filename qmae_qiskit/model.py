"""QMAE and its baseline QAE: parameters, mask token, fidelity, reconstruction, circuits.

One model, one file. The forward path, with shapes for a 16x16 image (n = 8 qubits):

    images (B, 16, 16), mask (B, 16, 16) bool
      -> fill_masked            token (8, 8) written into every masked patch (QAE: zeros)
      -> flatten                (B, 256) masked inputs, (B, 256) originals
      -> engine.fidelity        F (B,) = <chi| U^dag (Tr_trash U|psi><psi|U^dag (x) |0><0|) U |chi>
      -> loss                   mean(1 - F)                                   (paper Eq. 9)
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from .approx_embedding import LadderFits
from .checkpoint import CONFIG, CheckpointError, load_checkpoint, load_config
from .circuits.ansatz import BLOCK_PARAMETERS, PAIR_SETS, all_pairs, named_pairs, validate_pairs
from .circuits.embedding import image_qubits
from .circuits.fidelity import DECODERS, resolve_trash_qubits
from .conditioning import by_position, mask_positions
from .engines import ANSATZES, ENGINES, Branches, Engine, make_engine
from .engines.ancilla_decoder import initial_stage
from .inputs import check_images_and_mask
from .latent import latent_features
from .losses import LOSSES, branches_and_pixels, check_loss_options
from .masking import fill_masked, num_masked_patches, parse_patch_size, patch_grid, random_masks
from .metrics import composite_image, state_fidelity
from .options import OptionError, Options, option

MAX_UNITARY_QUBITS = 10  # a dense 1024 x 1024 matrix exponential per step

__all__ = [
    "QMAE",
    "QAE",
    "ModelConfig",
    "MODELS",
    "OBJECTIVES",
    "TOKENS",
    "CONDITIONS",
    "LOSSES",
    "LossTerms",
    "build_model",
    "load_model",
]

MODELS = ("qmae", "qae")
OBJECTIVES = ("reset", "postselect")
TOKENS = ("shared", "per-patch")
CONDITIONS = ("none", "position")
MAX_ANCILLAS = 4


def _pairs(value: Any) -> str | tuple[tuple[int, int], ...]:
    """A pair set's name, or explicit pairs as a tuple of int pairs."""
    if isinstance(value, str):
        if value not in PAIR_SETS:
            raise ValueError(f"unknown pair set {value!r}; choose one of {', '.join(PAIR_SETS)} (or explicit pairs)")
        return value
    pairs = []
    for pair in value:
        if isinstance(pair, (str, bytes)) or len(pair) != 2:
            raise ValueError(f"invalid qubit pair {pair!r}: a pair is two different qubits")
        pairs.append((int(pair[0]), int(pair[1])))
    return tuple(pairs)


def _qubit_list(value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not all(isinstance(q, int) and not isinstance(q, bool) for q in value):
        raise ValueError(f"must be a list of qubit indices, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class ModelConfig(Options):
    """The architecture of a QMAE or QAE: the one home of every model option.

    Each field declares its type, default, allowed values and help once; the ``qmae train``
    flags, ``QMAE(...)``'s keywords, the ``architecture`` of ``config.json`` and
    :meth:`QMAE.load` all come from here. ``ModelConfig(layers=2).validate()`` checks it alone;
    building the model checks it too.
    """

    ALIASES: ClassVar[dict[str, str]] = {"tokens": "token"}  # config.json files before the one-home refactor

    model: str = option(
        "qmae", "qmae (a learnable mask token) or qae (masked pixels are zeros, the baseline)", choices=MODELS
    )
    image_size: int = option(16, "image side, a power of 2 from 2 to 64 (16: 8 qubits)", minimum=2, maximum=64)
    patch_size: tuple[int, int] = option(
        (8, 8), "patch height x width; the token has this shape", metavar="HxW", parse=parse_patch_size
    )
    mask_ratio: float = option(0.25, "fraction of the image masked, a whole number of patches", above=0, below=1)
    latent_qubits: int | None = option(
        None, "latent qubits k (default n - 1); the trash is the highest n - k qubits", minimum=1
    )
    trash_qubits: tuple[int, ...] | None = option(
        None, "explicit trash qubits instead of latent_qubits", cli=False, parse=_qubit_list
    )
    pairs: str | tuple[tuple[int, int], ...] = option(
        "all",
        "the encoder's qubit pairs: all (the paper's), line or line2 (neighbours on a line, once or twice: no routing "
        "on hardware); explicit pairs in Python",
        choices=PAIR_SETS,
        parse=_pairs,
    )
    layers: int = option(1, "repetitions of the pair layer, each with its own weights", minimum=1)
    decoder: str = option(
        "tied", "tied: U^dagger (the paper's); untied: an independent decoder V^dagger, starting at U", choices=DECODERS
    )
    token: str = option("shared", "one mask token for every patch position, or one per position", choices=TOKENS)
    ansatz: str = option(
        "blocks",
        "blocks: the paper's two-qubit blocks; unitary: a general unitary, the architecture's ceiling (a bound, not a "
        f"circuit; exact engine, n <= {MAX_UNITARY_QUBITS})",
        choices=ANSATZES,
    )
    objective: str = option(
        "reset",
        "reset the trash qubit (the paper's) or measure it and keep the shots where it reads 0 (postselect)",
        choices=OBJECTIVES,
    )
    embedding_layers: int | None = option(
        None,
        "the approximate ladder embedding hardware runs (L layers of n-1 CNOTs) instead of the exact one (training "
        "with it is slow: for fine-tuning)",
        minimum=1,
        maximum=64,  # 64 (n - 1) CNOTs decohere on any device and take minutes to fit: more is a typo
        metavar="L",
    )
    condition: str = option(
        "none",
        "none: one set of weights for every mask; position: one set of weights (and one token) per patch position, "
        "picked per image from its mask (one masked patch per image)",
        choices=CONDITIONS,
    )
    ancillas: int = option(
        0,
        "A fresh ancilla qubits the decoder acts on after U^dagger (a block-encoded decoder: shots are kept where "
        "they read 0, so it applies any contraction, not only a projector); 0: the paper's decoder",
        minimum=0,
        maximum=MAX_ANCILLAS,
        metavar="A",
    )

    @property
    def num_qubits(self) -> int:
        """Data qubits ``n`` (``2**n`` pixels)."""
        return image_qubits(self.image_size)

    def resolved_trash(self) -> tuple[int, ...]:
        """The trash qubits, from ``trash_qubits`` or ``latent_qubits``."""
        return resolve_trash_qubits(self.num_qubits, self.latent_qubits, self.trash_qubits)

    def resolved_pairs(self) -> list[tuple[int, int]]:
        """The encoder's pairs of one layer, from a name or an explicit list."""
        n = self.num_qubits
        return named_pairs(self.pairs, n) if isinstance(self.pairs, str) else validate_pairs(self.pairs, n)

    def ancilla_pairs(self) -> list[tuple[int, int]]:
        """The ancilla stage's pairs of one layer on ``n + ancillas`` qubits (the ancillas are the
        highest): the named set on the wider register, or all pairs when ``pairs`` is explicit."""
        wide = self.num_qubits + self.ancillas
        return named_pairs(self.pairs, wide) if isinstance(self.pairs, str) else all_pairs(wide)

    @property
    def num_positions(self) -> int:
        """Patch positions on the grid (the weight sets of ``condition="position"``)."""
        rows, cols = patch_grid(self.image_size, self.patch_size)
        return rows * cols

    def resolved(self) -> ModelConfig:
        """The same architecture with explicit trash qubits and pairs (what ``config.json`` records)."""
        return self.replace(trash_qubits=self.resolved_trash(), latent_qubits=None, pairs=tuple(self.resolved_pairs()))

    def _check(self) -> None:
        def named(name: str, check: Callable[[], Any]) -> Any:
            try:
                return check()
            except ValueError as exc:  # the message names the option, or is prefixed with it
                text = str(exc)
                message = "{0}" + text[len(name) :] if text.startswith(name + " ") else "{0}: " + text
                raise OptionError(message, name) from None

        n = named("image_size", lambda: self.num_qubits)
        named("patch_size", lambda: patch_grid(self.image_size, self.patch_size))
        named("mask_ratio", lambda: num_masked_patches(self.mask_ratio, self.image_size, self.patch_size))
        named("latent_qubits" if self.trash_qubits is None else "trash_qubits", self.resolved_trash)
        pairs = named("pairs", self.resolved_pairs)
        if self.ansatz == "unitary":
            if n > MAX_UNITARY_QUBITS:
                raise OptionError(
                    f"{{0}} unitary is a dense 2^n x 2^n matrix: n <= {MAX_UNITARY_QUBITS} (images up to "
                    f"{2 ** (MAX_UNITARY_QUBITS // 2)}x{2 ** (MAX_UNITARY_QUBITS // 2)}), got n = {n}",
                    "ansatz",
                )
            if self.layers != 1 or pairs != all_pairs(n):
                raise OptionError("{0} unitary is a general unitary: it has no {1} or {2}; drop them", *_UNITARY)
            if n + self.ancillas > MAX_UNITARY_QUBITS:
                raise OptionError(
                    f"{{0}} unitary with {{1}} {self.ancillas} is a dense matrix on n + A = {n + self.ancillas} "
                    f"qubits: n + A <= {MAX_UNITARY_QUBITS}",
                    "ansatz",
                    "ancillas",
                )
        if self.condition == "position":
            masked = num_masked_patches(self.mask_ratio, self.image_size, self.patch_size)
            if masked != 1:
                raise OptionError(
                    f"{{0}} position picks the weights by the masked patch: it needs one masked patch per image, "
                    f"but {{1}} {self.mask_ratio:g} masks {masked}; use {{1}} {1 / self.num_positions:g} or {{0}} none",
                    "condition",
                    "mask_ratio",
                )
        if self.model == "qae" and self.token != "shared":
            raise OptionError("QAE has no mask token (masked pixels are zeros): drop {0}", "token")


_UNITARY = ("ansatz", "pairs", "layers")


def _check_engine(config: ModelConfig, engine: str) -> None:
    """Refuse an engine that cannot compute this architecture, naming both options."""
    if engine not in ENGINES:
        raise OptionError(f"{{0}} must be one of {', '.join(ENGINES)}, got {engine!r}", "engine")
    if engine == "exact":
        return
    if config.embedding_layers is not None:
        raise OptionError(
            "the approximate embedding ({0}) runs on the exact engine only; use {1} exact", "embedding_layers", "engine"
        )
    if config.ansatz == "unitary":
        raise OptionError("{0} unitary is a bound computed by the exact engine only; use {1} exact", "ansatz", "engine")
    if config.ancillas:
        raise OptionError("the ancilla-assisted decoder ({0}) runs on {1} exact only", "ancillas", "engine")


class LossTerms(NamedTuple):
    """What one training step computes: ``loss`` (scalar), ``fidelity`` and ``kept`` (``(B,)``)."""

    loss: torch.Tensor
    fidelity: torch.Tensor
    kept: torch.Tensor


class QMAE(nn.Module):
    """Quantum masked autoencoder (Andrews and Mishra, 2025) with a learnable mask token.

    The architecture is a :class:`ModelConfig`, given whole (``QMAE(config)``) or as its fields'
    keywords (``QMAE(image_size=16, layers=2)``; both: the keywords override the config's):
    ``image_size``, ``patch_size``, ``mask_ratio``, ``latent_qubits`` / ``trash_qubits``, ``pairs``,
    ``layers``, ``decoder``, ``token``, ``ansatz``, ``objective``, ``embedding_layers`` (see its
    fields for each one's meaning and allowed values). The fidelity and reconstruction are computed
    with ``embedding_layers`` when set, so that what is evaluated (or fine-tuned) is what runs on
    hardware; the ladder fit is not differentiable: only the weights then receive gradients.

    Args:
        config: the architecture (default: the paper's).
        engine: ``"exact"`` (batched torch, default) or ``"estimator"`` (EstimatorQNN on Aer).
        engine_options: passed to the engine (``dtype`` for exact; ``precision``, ``seed``,
            ``gradient`` for estimator).
        seed: seed of the initial weights.
        init_scale: initial block weights are uniform in ``[-init_scale, init_scale]`` (the
            unitary ansatz starts near the identity instead).
        token_init: initial value of every token pixel.
        tokens: the former name of ``token`` (still read).
        **options: :class:`ModelConfig` fields.

    Raises:
        OptionError: an unknown option, a bad value or an impossible combination (named as a
            keyword: ``layers=``), or a config of the other model kind.
    """

    uses_token = True

    def __init__(
        self,
        config: ModelConfig | None = None,
        *,
        engine: str = "exact",
        engine_options: dict[str, Any] | None = None,
        seed: int | None = None,
        init_scale: float = math.pi,
        token_init: float = 0.1,
        tokens: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        kind = "qmae" if self.uses_token else "qae"
        unknown = sorted(set(options) - ModelConfig.names())
        if unknown:
            raise OptionError(f"{type(self).__name__}() got unknown option(s) {unknown}; the options are ModelConfig's")
        if tokens is not None:
            options.setdefault("token", tokens)
        config = (config or ModelConfig(model=kind)).replace(**options)
        if config.model != kind:
            raise OptionError(
                f"{{0}} is {config.model!r} but this builds {kind.upper()}: use {config.model.upper()}(...) or "
                "qmae_qiskit.build_model(config)",
                "model",
            )
        config.validate()
        _check_engine(config, engine)
        self.config = config
        self.num_qubits = config.num_qubits
        self.num_masked = num_masked_patches(config.mask_ratio, config.image_size, config.patch_size)
        self.trash_qubits = config.resolved_trash()
        self.latent_qubits = self.num_qubits - len(self.trash_qubits)
        self.pairs = config.resolved_pairs()
        self.encoder_pairs = self.pairs * config.layers  # layer l's blocks are encoder_pairs[l * len(pairs):]
        self.ancilla_pairs = config.ancilla_pairs() * config.layers if config.ancillas else []
        self.num_positions = config.num_positions
        self._fits = LadderFits()  # the ladder embedding's fits, by content

        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        sets = (self.num_positions,) if config.condition == "position" else ()  # one weight set per position
        if config.ansatz == "unitary":  # near the identity: K = A - A^dagger small
            dim = 2**self.num_qubits
            theta = 0.01 * torch.randn(*sets, 2, dim, dim, generator=gen)
        else:
            theta = (2 * torch.rand(*sets, BLOCK_PARAMETERS * len(self.encoder_pairs), generator=gen) - 1) * init_scale
        self.theta = nn.Parameter(theta)  # ([P,] 15 * pairs * layers) or ([P,] 2, 2**n, 2**n)
        # the untied decoder starts where the tied model starts (V = U) and trains apart from it
        self.decoder_theta = nn.Parameter(theta.clone()) if config.decoder == "untied" else None
        self.ancilla_theta: nn.Parameter | None = None
        if config.ancillas:  # the ancilla stage W starts at (nearly) the identity: the plain decoder
            stage = initial_stage(
                sets=sets,
                num_blocks=len(self.ancilla_pairs),
                wide_qubits=self.num_qubits + config.ancillas,
                ansatz=config.ansatz,
                generator=gen,
            )
            self.ancilla_theta = nn.Parameter(stage)
        self.token: nn.Parameter | None
        if self.uses_token:
            per_position = config.token == "per-patch" or config.condition == "position"
            shape = (self.num_positions, *config.patch_size) if per_position else config.patch_size
            self.token = nn.Parameter(torch.full(shape, float(token_init)))  # (Hp, Wp) or (P, Hp, Wp)
        else:
            self.register_parameter("token", None)
        self.engine = "exact"
        self.set_engine(engine, **(engine_options or {}))
        self.set_embedding(config.embedding_layers)

    # --- the architecture, read from the config ---------------------------------------------------

    image_size = property(lambda self: self.config.image_size, doc="Side of the square images.")
    patch_size = property(lambda self: self.config.patch_size, doc="``(height, width)`` of a patch.")
    mask_ratio = property(lambda self: self.config.mask_ratio, doc="Fraction of the image masked.")
    layers = property(lambda self: self.config.layers, doc="Repetitions of the pair layer.")
    decoder = property(lambda self: self.config.decoder, doc="``tied`` or ``untied``.")
    tokens = property(lambda self: self.config.token, doc="``shared`` or ``per-patch`` (``config.token``).")
    ansatz = property(lambda self: self.config.ansatz, doc="``blocks`` or ``unitary``.")
    objective = property(lambda self: self.config.objective, doc="``reset`` or ``postselect``.")
    embedding_layers = property(
        lambda self: self.config.embedding_layers, doc="``None`` (exact embedding) or the ladder's layers."
    )
    condition = property(lambda self: self.config.condition, doc="``none`` or ``position``.")
    ancillas = property(lambda self: self.config.ancillas, doc="Ancilla qubits of the decoder (0: none).")

    # --- configuration -------------------------------------------------------------------------

    def set_engine(self, engine: str, **options: Any) -> QMAE:
        """Switch the fidelity engine (the parameters stay the same objects). Returns ``self``.

        Raises:
            OptionError: an unknown engine, or the estimator engine with an approximate embedding
                or the unitary ansatz.
        """
        _check_engine(self.config, engine)
        if engine == "exact":
            options.setdefault("ansatz", self.ansatz)
            if self.ancillas:
                options.update(ancillas=self.ancillas, ancilla_pairs=self.ancilla_pairs)
        else:
            options.setdefault("decoder", self.decoder)
        self._engine: Engine = make_engine(engine, self.num_qubits, self.encoder_pairs, self.trash_qubits, **options)
        self.engine = engine
        return self

    def set_embedding(self, layers: int | None) -> QMAE:
        """Use the exact embedding (``None``) or the approximate ladder with ``layers`` CNOT layers.
        Returns ``self``.

        Raises:
            OptionError: ``layers`` not ``None`` or a positive integer, or the estimator engine.
        """
        config = self.config.replace(embedding_layers=layers)
        config.check_field("embedding_layers")
        _check_engine(config, self.engine)
        self.config = config  # templates and ladder fits are cached per embedding: nothing to drop
        return self

    @contextlib.contextmanager
    def embedding(self, layers: int | None) -> Iterator[QMAE]:
        """This model with the embedding ``layers`` for the block, its own afterwards."""
        before = self.embedding_layers
        self.set_embedding(layers)
        try:
            yield self
        finally:
            self.set_embedding(before)

    def architecture(self) -> dict[str, Any]:
        """The architecture as ``config.json`` records it: :class:`ModelConfig` with explicit
        trash qubits and pairs (JSON-serializable)."""
        return self.config.resolved().to_dict()

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

    def check_inputs(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, mask)`` as every method takes them (:func:`~qmae_qiskit.inputs.check_images_and_mask`;
        a position-conditioned model also needs one whole patch per mask).

        Raises:
            ValueError: malformed images or mask, named with the fix.
        """
        images, mask = check_images_and_mask(images, mask, image_size=self.image_size)
        if self.condition == "position":
            self.positions(mask)  # one whole patch per image, or a one-line error
        return images, mask

    def positions(self, mask: torch.Tensor) -> torch.Tensor:
        """``(B,)`` each mask's patch position: the weight set ``condition="position"`` uses
        (:func:`~qmae_qiskit.conditioning.mask_positions`)."""
        return mask_positions(mask, self.patch_size)

    def _by_position(self, mask: torch.Tensor, run: Callable[[dict[str, Any], Any], Any]) -> Any:
        return by_position(self, mask, run)  # conditioning.py: once, or once per patch position

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
        images, mask = self.check_inputs(images, mask)
        masked = self.embed(self.fill(images, mask).flatten(1))  # (B, 2**n)
        original = self.embed(images.flatten(1))
        return self._by_position(
            mask, lambda w, rows: self._engine.branches(w.pop("theta"), masked[rows], original[rows], **w)
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
        """``(B,)`` probability that the trash (and the ancillas) read 0: the fraction of shots
        post-selection keeps."""
        return self.branches(images, mask).kept

    def acceptance(self, branches: Branches) -> torch.Tensor | None:
        """The fraction of shots this model's own procedure keeps, from its :meth:`branches`:
        ``kept`` when post-selected, ``accepted`` (the ancillas read 0) for a reset model with
        ancillas, ``None`` for the paper's reset model (every shot counts)."""
        if self.objective == "postselect":
            return branches.kept
        return branches.accepted

    def embed(self, vectors: torch.Tensor) -> torch.Tensor:
        """What the embedding prepares for ``(B, 2**n)`` pixel vectors: the vectors themselves
        (exact embedding; the engine normalizes) or the fitted ladder states (approximate).

        Fits are cached by content, so :meth:`fidelity` and :meth:`reconstruct` of the same
        images fit once.
        """
        if self.embedding_layers is None:
            return vectors
        return self._fits.fit(vectors, self.embedding_layers).states.to(vectors.device, vectors.dtype)

    def ladder_angles(self, vectors: torch.Tensor) -> torch.Tensor:
        """``(B, (L + 1) * n)`` ladder circuit angles for pixel vectors (approximate embedding)."""
        return self._fits.fit(vectors, self.embedding_layers or 1).angles.flatten(1)

    def loss(
        self,
        images: torch.Tensor,
        mask: torch.Tensor,
        *,
        trash_weight: float = 0.0,
        keep_weight: float = 0.0,
        loss: str = "fidelity",
    ) -> torch.Tensor:
        """The training loss: the scalar of :meth:`loss_terms`."""
        return self.loss_terms(images, mask, trash_weight=trash_weight, keep_weight=keep_weight, loss=loss).loss

    def loss_terms(
        self,
        images: torch.Tensor,
        mask: torch.Tensor,
        *,
        trash_weight: float = 0.0,
        keep_weight: float = 0.0,
        loss: str = "fidelity",
    ) -> LossTerms:
        """The training loss, the batch's fidelities under the model's objective, and ``P(keep)``.

        ``loss="fidelity"``, ``objective="reset"``: ``mean(1 - F)``, the paper's loss (Eq. 9). A
        positive ``trash_weight`` adds ``trash_weight * mean(1 - P(trash = 0))``, the compression
        objective of Romero et al.'s quantum autoencoder (not in the QMAE paper): it pushes the
        information into the latent qubits, so the reset discards less and the reconstruction
        carries less of the trash = 1 "ghost".

        ``objective="postselect"``: ``mean(1 - F_ps)`` on the kept shots, plus ``keep_weight *
        mean(1 - P(keep))``: without it the model learns to keep fewer shots (the fidelity of the
        few it keeps rises), which on hardware costs shots and makes the filled patch less
        readable; the weight holds the acceptance rate up. With ancillas (``ancillas > 0``) the
        kept shots are those where the ancillas (and, post-selected, the trash) read 0, and
        ``keep_weight`` holds that fraction up under either objective.

        ``loss="composite"`` aims at the patch, as classical MAEs compute their loss on the masked
        patches: ``mean(1 - F_c)`` with ``F_c`` the fidelity of the *composite* (the visible pixels
        kept, the model's patch pasted in at the visible-pixel scale; :func:`~qmae_qiskit.metrics.composite_image`)
        with the original, plus the same acceptance term. It reads only the output's pixel
        probabilities (what a device measures), so the output state's phases are free: the state
        fidelity of such a model is not what it is trained for.

        Returns:
            :class:`LossTerms`: the scalar loss, ``(B,)`` fidelities (composite ones for
            ``loss="composite"``), ``(B,)`` kept fraction of the model's procedure (1 where every
            shot counts).

        Raises:
            ValueError: a negative or non-finite weight, a weight of the other objective, an
                unknown loss, or the composite loss on the estimator engine.
        """
        check_loss_options(self, trash_weight=trash_weight, keep_weight=keep_weight, loss=loss)
        postselect = self.objective == "postselect"
        if loss == "composite":
            b, pixels = branches_and_pixels(self, images, mask)
            images, mask = self.check_inputs(images, mask)
            fid = state_fidelity(composite_image(pixels.sqrt(), images, mask), images).to(images.dtype)
        else:
            b = self.branches(images, mask)
            fid = b.postselected if postselect else b.fidelity
        kept = self.acceptance(b)
        total = (1.0 - fid).mean()
        if keep_weight and kept is not None:
            total = total + keep_weight * (1.0 - kept).mean()
        if trash_weight:
            total = total + trash_weight * (1.0 - b.kept).mean()
        return LossTerms(total, fid, torch.ones_like(fid) if kept is None else kept)

    def features(self, images: torch.Tensor, mask: torch.Tensor | None = None, *, kind: str = "pauli2") -> torch.Tensor:
        """What the encoder learned, as numbers: Pauli expectations on the latent qubits of ``U |psi>``.

        ``kind="pauli2"`` (default): X, Y, Z on each latent qubit and the 9 products on each pair
        (210 values at k = 7); ``"pauli1"``: the ``3k`` single-qubit ones. ``mask``: the masked
        input's features (needed by ``condition="position"``); ``None``: the clean image's.
        Returns ``(B, F)`` real, no gradient; details: :func:`~qmae_qiskit.latent.latent_features`.
        """
        return latent_features(self, images, mask, kind=kind)

    @property
    def latent_indices(self) -> list[int]:
        """The qubits that are not trash (``latent_qubits`` counts them): what the decoder keeps,
        and where :meth:`features` looks."""
        return [q for q in range(self.num_qubits) if q not in self.trash_qubits]

    def _engine_dtype(self) -> torch.dtype:
        return getattr(self._engine, "dtype", torch.complex128)

    def reconstruct(
        self,
        images: torch.Tensor,
        mask: torch.Tensor,
        *,
        postselect: bool | None = None,
        composite: bool = False,
    ) -> torch.Tensor:
        """The image read off the decoder's output state (always computed exactly).

        With the trash reset the output is mixed; each pixel is the square root of its
        probability (the diagonal of ``rho_out``). Unscaled: each image has unit L2 norm.

        Args:
            images: ``(B, H, W)`` in [0, 1].
            mask: ``(B, H, W)`` bool.
            postselect: ``True``: measure the trash and keep only the trash = 0 outcome (a pure
                state; on hardware, a mid-circuit measurement and discarded shots); ``False``:
                reset it; ``None`` (default): the model's own ``objective``.
            composite: return the *composite* instead, in pixel units: the visible pixels of
                ``images`` kept and the reconstruction's masked pixels pasted in, scaled by the
                least-squares fit of the visible pixels (how classical MAEs show inpainting;
                :func:`~qmae_qiskit.metrics.composite_image`).

        Returns:
            ``(B, H, W)``: unit-norm amplitudes, or the composite in [0, 1].
        """
        images, mask = self.check_inputs(images, mask)
        masked = self.embed(self.fill(images, mask).flatten(1))
        ps = self._postselect(postselect)
        probs = self._by_position(
            mask, lambda w, rows: self._engine.reconstruct(w.pop("theta"), masked[rows], postselect=ps, **w)
        )
        amplitudes = probs.sqrt().reshape(images.shape)
        return composite_image(amplitudes, images, mask) if composite else amplitudes

    # --- circuits (qmae_qiskit.model_circuits; these names stay for older scripts) ------------------

    def template(self, variant: str = "reset", *, measure: bool = False) -> Any:
        """Deprecated: :func:`qmae_qiskit.model_circuits.template` (``template(model, variant)``)."""
        return _circuits("template")(self, variant, measure=measure)

    def parameter_values(self, images: Any, mask: Any, variant: str = "reset", *, bases: Sequence[str] = ()) -> Any:
        """Deprecated: :func:`qmae_qiskit.model_circuits.parameter_values`."""
        return _circuits("parameter_values")(self, images, mask, variant, bases=bases)

    def circuit(self, image: Any, mask: Any, *, variant: str = "reset", measure: bool = False) -> Any:
        """Deprecated: :func:`qmae_qiskit.model_circuits.bound_circuit`."""
        return _circuits("bound_circuit")(self, image, mask, variant=variant, measure=measure)


def _circuits(name: str) -> Any:
    """``model_circuits.<name>``, with the warning that the method moved there."""
    import warnings

    from . import model_circuits

    warnings.warn(
        f"QMAE.{'circuit' if name == 'bound_circuit' else name}() moved to "
        f"qmae_qiskit.model_circuits.{name}(model, ...)",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(model_circuits, name)


class QAE(QMAE):
    """The paper's baseline: the same circuit, masked pixels set to 0 and no token."""

    uses_token = False


def build_model(config: ModelConfig, *, engine: str = "exact", seed: int | None = None, **kwargs: Any) -> QMAE:
    """A freshly initialized :class:`QMAE` or :class:`QAE`, as ``config.model`` says.

    Args:
        config: the architecture.
        engine, seed, kwargs: as :class:`QMAE` takes them.

    Raises:
        OptionError: a bad or impossible architecture.
    """
    cls = QMAE if config.model == "qmae" else QAE
    return cls(config, engine=engine, seed=seed, **kwargs)


def load_model(run_dir: str | os.PathLike, *, engine: str = "exact", expect: str | None = None) -> QMAE:
    """Rebuild the trained model of a run directory (a :class:`QMAE` or a :class:`QAE`).

    Args:
        run_dir: a directory written by ``qmae train``.
        engine: the engine to attach.
        expect: ``"qmae"`` or ``"qae"`` to insist on a kind.

    Raises:
        CheckpointError: not a run directory, a corrupt checkpoint, an architecture that is not
            valid (the key named), or the wrong model kind.
    """
    config = load_config(run_dir)
    try:
        arch = ModelConfig.from_dict(config["architecture"], where=f"{Path(run_dir) / CONFIG} architecture")
    except OptionError as exc:
        raise CheckpointError(f"{exc}") from None
    if expect is not None and arch.model != expect:
        raise CheckpointError(f"{run_dir} holds a {arch.model.upper()} model, not a {expect.upper()}")
    try:
        model = build_model(arch, engine=engine)
    except ValueError as exc:
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
