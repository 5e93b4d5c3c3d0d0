"""The whole QMAE circuit: embed, encode, reset (or measure) the trash, decode, compare with the original.

Variants (``n`` data qubits, ``t`` trash qubits; the qubit counts are for n = 8, t = 1):

``"paper"`` (``2n + t + 1`` = 18 qubits)
    Section 4 of the paper: the trash qubits are SWAPped with fresh ``|0>`` qubits, a second
    register holds the embedding of the unmasked image, and a SWAP test controlled by one more
    qubit (the *control qubit*, register ``swap``) gives ``<Z_swap> = F``. Unitary up to the final
    measurement, so statevector estimators are exact; the fresh qubits then hold the trash, so
    ``<Z_swap (x) |0><0|_fresh>`` and ``<|0><0|_fresh>`` give the post-selected quantities too.
``"reset"`` (``2n + 1`` = 17 qubits)
    The design card's hardware form: a mid-circuit ``reset`` of the trash qubits replaces the swap.
``"destructive"`` (``2n`` = 16 qubits)
    Reset, then the destructive SWAP test (no control qubit): CX(data_i, ref_i), H(data_i), measure all;
    ``F = E[(-1)**sum_i a_i b_i]`` over the data outcomes ``a`` and reference outcomes ``b``.
``"compute_uncompute"`` (``n`` = 8 qubits)
    Reset, decode, then the inverse of the original image's embedding on the same qubits;
    ``F = P(all zeros)``. No second register, no control qubit.

In these four ``F = <phi| rho_out |phi>`` where ``rho_out`` is the decoder's (mixed) output and
``|phi>`` the embedding of the unmasked image: the quantity the exact engine computes.

Post-selected variants: the trash is *measured* instead of reset, and only the shots where it
reads 0 are kept; the fidelity of the kept shots is ``F_ps = |<eta_0|phi_0>|^2 / P(keep)``
(:class:`~qmae_qiskit.engines.Branches`). Both are compute-uncompute circuits (the shallowest form
on hardware), with classical bits ``c[0..n-1]`` the data and ``c[n..n+t-1]`` the trash:

``"postselect"`` (``n`` = 8 qubits)
    A mid-circuit measurement of the trash qubits (dynamic circuits on IBM devices); a kept shot's
    trash is then ``|0>``, as the decoder expects. ``F_ps = P(data = 0 | trash = 0)``.
``"postselect_flag"`` (``n + t`` = 9 qubits)
    No mid-circuit measurement: a CNOT copies each trash qubit onto a fresh flag qubit, measured at
    the end with the data; projecting the flag on 0 projects the trash on 0. One more qubit and
    one CNOT per trash qubit, for devices or simulators without mid-circuit measurement.

For estimators (not a hardware variant): :func:`estimator_circuit` (``n + t + 1`` = 10 qubits) is the
compute-uncompute circuit made unitary: the trash SWAPped onto fresh qubits instead of reset, and a
``zero`` qubit flipped when every data qubit is 0, so that every field of
:class:`~qmae_qiskit.engines.Branches` is the expectation value of at most four Pauli terms.

Every variant takes the decoder's own weights when the decoder is untied (``decoder="untied"``:
an independent ``V(phi)^dagger`` of the encoder's form instead of ``U(theta)^dagger``).

Ancilla-assisted decoder (``ancillas=A``): after ``V^dagger`` an *ancilla stage* ``W(omega)`` (the
encoder's block form on the ``n + A`` qubits ``data + aux``) acts on the data and ``A`` fresh
``aux`` qubits, measured at the end into the classical bits after the others; a shot is kept
when they read 0, so the decoder applies the block ``<0|W|0>``, a contraction (a block
encoding) rather than a projector. The compute-uncompute, post-selected and reconstruction
circuits take it (the SWAP-test variants do not: their forms without a control qubit are shallower); every
"kept shot" formula below reads all bits after the ``n`` data bits as bits that must be 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit.circuit import ClassicalRegister, ParameterVector, QuantumCircuit, QuantumRegister

from .ancilla_decoder import AncillaStage
from .ansatz import BLOCK_PARAMETERS, all_pairs, decoder, encoder, validate_pairs
from .embedding import amplitude_embedding, check_num_qubits, ladder_embedding, num_embedding_parameters

__all__ = [
    "VARIANTS",
    "POSTSELECTED_VARIANTS",
    "RECONSTRUCTION",
    "RECONSTRUCTION_POSTSELECT",
    "RECONSTRUCTION_POSTSELECT_FLAG",
    "RECONSTRUCTION_VARIANTS",
    "CIRCUIT_VARIANTS",
    "DECODERS",
    "ESTIMATOR_VARIANT",
    "FidelityCircuit",
    "estimator_circuit",
    "fidelity_circuit",
    "fidelity_from_counts",
    "keep_fraction_from_counts",
    "reconstruction_circuit",
    "resolve_trash_qubits",
]

POSTSELECTED_VARIANTS = ("postselect", "postselect_flag")
VARIANTS = ("paper", "reset", "destructive", "compute_uncompute") + POSTSELECTED_VARIANTS
RECONSTRUCTION = "reconstruction"
RECONSTRUCTION_POSTSELECT = "reconstruction_postselect"
RECONSTRUCTION_POSTSELECT_FLAG = "reconstruction_postselect_flag"
RECONSTRUCTION_VARIANTS = (RECONSTRUCTION, RECONSTRUCTION_POSTSELECT, RECONSTRUCTION_POSTSELECT_FLAG)
CIRCUIT_VARIANTS = VARIANTS + RECONSTRUCTION_VARIANTS  # every template a model builds
DECODERS = ("tied", "untied")
ESTIMATOR_VARIANT = "compute_uncompute_swap"  # estimator_circuit's: unitary, for estimators only


@dataclass(frozen=True)
class FidelityCircuit:
    """A fidelity (or reconstruction) circuit and the roles of its parameters and qubits.

    Attributes:
        circuit: the parameterized circuit.
        variant: one of :data:`CIRCUIT_VARIANTS`, or :data:`ESTIMATOR_VARIANT` (:func:`estimator_circuit`).
        masked: embedding parameters of the masked image (the encoder's input).
        original: embedding parameters of the unmasked image (the reference).
        weights: the encoder weights theta (shared with the decoder when it is tied).
        num_data_qubits: ``n``.
        trash_qubits: which data qubits are reset (or measured) between encoder and decoder.
        readout_qubit: index of the qubit whose Z gives F: the SWAP test's control qubit, or the ``zero`` flag of
            :func:`estimator_circuit`; ``None`` for variants without one.
        decoder_weights: the untied decoder's weights phi (``None`` when tied).
        fresh: indices of the fresh qubits that receive the trash (``"paper"``, :func:`estimator_circuit`),
            else ``()``.
        ancilla_weights: the ancilla stage's weights (``None`` without ancillas).
        num_ancillas: aux qubits of the ancilla stage.
        basis: :func:`~qmae_qiskit.circuits.features_circuit`'s measurement angles (``None`` elsewhere).
    """

    circuit: QuantumCircuit
    variant: str
    masked: ParameterVector
    original: ParameterVector
    weights: ParameterVector
    num_data_qubits: int
    trash_qubits: tuple[int, ...]
    readout_qubit: int | None
    decoder_weights: ParameterVector | None = None
    fresh: tuple[int, ...] = ()
    ancilla_weights: ParameterVector | None = None
    num_ancillas: int = 0
    basis: ParameterVector | None = None

    @property
    def input_parameters(self) -> list:
        """Masked then original embedding parameters: the order the engines bind them in."""
        return list(self.masked) + list(self.original)

    @property
    def ancilla(self) -> int | None:
        """Deprecated name of :attr:`readout_qubit` ("ancilla" now means the decoder's ancillas only)."""
        import warnings

        warnings.warn("FidelityCircuit.ancilla is now FidelityCircuit.readout_qubit", DeprecationWarning, stacklevel=2)
        return self.readout_qubit

    @property
    def weight_parameters(self) -> list:
        """Encoder, then (untied) decoder, then ancilla-stage weights."""
        out = list(self.weights)
        for extra in (self.decoder_weights, self.ancilla_weights):
            out += list(extra) if extra is not None else []
        return out


def resolve_trash_qubits(
    num_qubits: int, latent_qubits: int | None = None, trash_qubits: Sequence[int] | None = None
) -> tuple[int, ...]:
    """Trash qubits from either a latent size (trash = the highest ``n - k`` qubits) or a list.

    Raises:
        ValueError: latent size outside ``1..n-1``, or a trash list that is empty, repeats a qubit,
            names a qubit outside ``0..n-1``, or disagrees with ``latent_qubits``.
    """
    if latent_qubits is not None and (
        isinstance(latent_qubits, bool)
        or not isinstance(latent_qubits, int)
        or not 1 <= latent_qubits <= num_qubits - 1
    ):
        raise ValueError(
            f"latent_qubits must be in 1..{num_qubits - 1} (an integer) for {num_qubits} data qubits, "
            f"got {latent_qubits!r}"
        )
    if trash_qubits is None:
        # the highest qubits (the image's row bits, most significant first): resetting the top
        # row bit trained to F = 0.784 on MNIST 16x16 vs 0.708 for the lowest column bit (measured)
        k = num_qubits - 1 if latent_qubits is None else latent_qubits
        return tuple(range(k, num_qubits))
    trash = tuple(int(q) for q in trash_qubits)
    if not trash or len(set(trash)) != len(trash) or not all(0 <= q < num_qubits for q in trash):
        raise ValueError(f"trash_qubits must be distinct qubits in 0..{num_qubits - 1}, got {trash}")
    if len(trash) >= num_qubits:
        raise ValueError("at least one qubit must stay latent")
    if latent_qubits is not None and latent_qubits != num_qubits - len(trash):
        raise ValueError(f"latent_qubits={latent_qubits} contradicts {len(trash)} trash qubits out of {num_qubits}")
    return tuple(sorted(trash))


class _Parts:
    """The pieces every variant is built from: embeddings, encoder, decoder and their parameters."""

    def __init__(
        self,
        num_qubits: int,
        trash,
        latent_qubits,
        pairs,
        embedding_layers,
        decoder_kind: str,
        ancillas: int = 0,
        ancilla_pairs: Sequence[Sequence[int]] | None = None,
    ) -> None:
        check_num_qubits(num_qubits)
        if isinstance(ancillas, bool) or not isinstance(ancillas, int) or ancillas < 0:
            raise ValueError(f"ancillas must be an integer >= 0, got {ancillas!r}")
        if decoder_kind not in DECODERS:
            raise ValueError(f"unknown decoder {decoder_kind!r}; choose one of {', '.join(DECODERS)}")
        self.n = num_qubits
        self.trash = resolve_trash_qubits(num_qubits, latent_qubits, trash)
        self.pairs = validate_pairs(all_pairs(num_qubits) if pairs is None else pairs, num_qubits)
        self.embed = _EmbeddingBuilder(num_qubits, embedding_layers)
        self.masked = ParameterVector("m", self.embed.size)
        self.original = ParameterVector("o", self.embed.size)
        self.weights = ParameterVector("θ", BLOCK_PARAMETERS * len(self.pairs))
        self.encoder = encoder(num_qubits, pairs=self.pairs, parameters=self.weights)
        self.decoder_weights = None
        if decoder_kind == "untied":
            self.decoder_weights = ParameterVector("φ", BLOCK_PARAMETERS * len(self.pairs))
            self.decoder = decoder(encoder(num_qubits, pairs=self.pairs, parameters=self.decoder_weights))
        else:
            self.decoder = decoder(self.encoder)
        self.num_ancillas = ancillas
        self.stage = AncillaStage(num_qubits, ancillas, ancilla_pairs) if ancillas else None  # ancilla_decoder.py
        self.ancilla_weights = self.stage.weights if self.stage is not None else None

    def decode(self, qc: QuantumCircuit, data: QuantumRegister) -> QuantumRegister | None:
        """Append the decoder (and the ancilla stage on fresh ``aux`` qubits); returns ``aux``."""
        qc.compose(self.decoder, data, inplace=True)
        return self.stage.append(qc, data) if self.stage is not None else None

    def result(
        self, qc: QuantumCircuit, variant: str, readout_qubit=None, fresh: Sequence[int] = ()
    ) -> FidelityCircuit:
        return FidelityCircuit(
            qc,
            variant,
            self.masked,
            self.original,
            self.weights,
            self.n,
            self.trash,
            readout_qubit,
            self.decoder_weights,
            tuple(fresh),
            self.ancilla_weights,
            self.num_ancillas,
        )


def fidelity_circuit(
    num_qubits: int,
    *,
    variant: str = "paper",
    latent_qubits: int | None = None,
    trash_qubits: Sequence[int] | None = None,
    pairs: Sequence[Sequence[int]] | None = None,
    measure: bool = False,
    embedding_layers: int | None = None,
    decoder: str = "tied",
    ancillas: int = 0,
    ancilla_pairs: Sequence[Sequence[int]] | None = None,
) -> FidelityCircuit:
    """Build the parameterized QMAE fidelity circuit.

    Args:
        num_qubits: data qubits ``n`` (2..12; 8 for a 16x16 image).
        variant: one of :data:`VARIANTS` (see the module docstring).
        latent_qubits: latent size ``k`` (default ``n - 1``); the trash is the highest ``n - k`` qubits.
        trash_qubits: explicit trash qubits instead of ``latent_qubits``.
        pairs: encoder qubit pairs, in order (all pairs if omitted; repeat the list for more layers).
        measure: add the final measurements a sampler needs (always on for the variants whose
            estimate is a function of all outcomes: destructive, compute-uncompute, post-selected).
        embedding_layers: ``None`` for the exact RY-tree embeddings, or ``L`` for the approximate
            ladder embeddings (``L * (n - 1)`` CNOTs each; :func:`~.embedding.ladder_embedding`).
        decoder: ``"tied"`` (``U(theta)^dagger``, the paper's) or ``"untied"`` (``V(phi)^dagger``).
        ancillas: fresh qubits of the ancilla-assisted decoder (see the module docstring);
            compute-uncompute and post-selected variants only.
        ancilla_pairs: the ancilla stage's pairs on ``n + ancillas`` qubits (default: all pairs).

    Returns:
        A :class:`FidelityCircuit`.

    Raises:
        ValueError: unknown variant or decoder, ``n`` outside 2..12, invalid latent / trash /
            pairs, or ancillas with a SWAP-test variant.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if ancillas and variant in ("paper", "reset", "destructive"):
        raise ValueError(
            f"the ancilla-assisted decoder is built for the compute_uncompute and post-selected variants, not "
            f"{variant!r}: use variant compute_uncompute (reset) or postselect"
        )
    parts = _Parts(num_qubits, trash_qubits, latent_qubits, pairs, embedding_layers, decoder, ancillas, ancilla_pairs)
    n, trash = parts.n, parts.trash
    if variant in POSTSELECTED_VARIANTS:
        return _postselected(parts, variant)

    data = QuantumRegister(n, "data")
    regs: list = [data]
    # the registers each variant adds (None where it has none)
    fresh: Any = None
    ref: Any = None
    swap: Any = None
    if variant == "paper":
        fresh = QuantumRegister(len(trash), "fresh")
        regs.append(fresh)
    if variant in ("paper", "reset", "destructive"):
        ref = QuantumRegister(n, "ref")
        regs.append(ref)
    if variant in ("paper", "reset"):
        swap = QuantumRegister(1, "swap")  # the SWAP test's control qubit
        regs.append(swap)
    qc = QuantumCircuit(*regs, name=f"qmae_{variant}")

    qc.compose(parts.embed(parts.masked), data, inplace=True)
    if ref is not None:
        qc.compose(parts.embed(parts.original), ref, inplace=True)
    qc.compose(parts.encoder, data, inplace=True)
    for k, q in enumerate(trash):
        if variant == "paper":
            qc.swap(data[q], fresh[k])
        else:
            qc.reset(data[q])
    aux = parts.decode(qc, data)

    if variant in ("paper", "reset"):
        qc.h(swap[0])
        for i in range(n):
            qc.cswap(swap[0], data[i], ref[i])
        qc.h(swap[0])
        if measure:
            creg = ClassicalRegister(1, "c")
            qc.add_register(creg)
            qc.measure(swap[0], creg[0])
    elif variant == "destructive":
        for i in range(n):
            qc.cx(data[i], ref[i])
            qc.h(data[i])
        creg = ClassicalRegister(2 * n, "c")  # c[i] = data_i, c[n + i] = ref_i
        qc.add_register(creg)
        qc.measure(list(data) + list(ref), creg)
    else:  # compute_uncompute (with ancillas: c[n..] the aux qubits, kept where 0)
        qc.compose(parts.embed(parts.original).inverse(), data, inplace=True)
        creg = ClassicalRegister(n + parts.num_ancillas, "c")
        qc.add_register(creg)
        qc.measure(data, creg[:n])
        if aux is not None:
            qc.measure(aux, creg[n:])

    readout = qc.find_bit(swap[0]).index if swap is not None else None
    fresh_indices = [qc.find_bit(q).index for q in fresh] if fresh is not None else []
    return parts.result(qc, variant, readout, fresh_indices)


def estimator_circuit(
    num_qubits: int,
    *,
    latent_qubits: int | None = None,
    trash_qubits: Sequence[int] | None = None,
    pairs: Sequence[Sequence[int]] | None = None,
    decoder: str = "tied",
) -> FidelityCircuit:
    """The unitary compute-uncompute circuit an estimator evaluates (``n + t + 1`` qubits: 10 at n = 8).

    Embed the masked image, apply U, SWAP each trash qubit with a fresh ``|0>`` qubit, apply the
    decoder and the inverse of the original image's embedding, then flip a ``zero`` qubit when every
    data qubit is 0 (a multi-controlled X between X gates). With ``phi = U psi`` split by trash value
    ``t`` and ``eta = V chi`` as in :class:`~qmae_qiskit.engines.Branches`, the data return to
    ``|0...0>`` with amplitude ``<eta_0|phi_t>`` while the fresh qubits hold ``t``, so

    - ``F = P(zero = 1) = <(I - Z_zero) / 2>``, the reset fidelity;
    - ``joint = P(zero = 1, fresh = 0)``; ``kept = P(fresh = 0)``.

    No reset and no measurement: a statevector estimator gives these exactly, each from at most
    ``2**(t + 1)`` Pauli terms (the projector onto the data's ``|0...0>`` would take ``2**n``).
    Not a hardware variant: the 8-control X is deep on a device, where the ``compute_uncompute`` and
    post-selected variants read the same quantities off the data bits.

    Args:
        num_qubits: data qubits ``n``.
        latent_qubits, trash_qubits, pairs, decoder: as :func:`fidelity_circuit` takes them.

    Returns:
        A :class:`FidelityCircuit`: ``variant`` is :data:`ESTIMATOR_VARIANT`, ``readout_qubit`` the ``zero``
        qubit, ``fresh`` the qubits that receive the trash.

    Raises:
        ValueError: as :func:`fidelity_circuit` does.
    """
    parts = _Parts(num_qubits, trash_qubits, latent_qubits, pairs, None, decoder)
    data = QuantumRegister(parts.n, "data")
    fresh = QuantumRegister(len(parts.trash), "fresh")
    zero = QuantumRegister(1, "zero")
    qc = QuantumCircuit(data, fresh, zero, name=f"qmae_{ESTIMATOR_VARIANT}")
    qc.compose(parts.embed(parts.masked), data, inplace=True)
    qc.compose(parts.encoder, data, inplace=True)
    for k, q in enumerate(parts.trash):
        qc.swap(data[q], fresh[k])
    parts.decode(qc, data)
    qc.compose(parts.embed(parts.original).inverse(), data, inplace=True)
    qc.x(data)
    qc.mcx(list(data), zero[0])
    qc.x(data)
    fresh_indices = [qc.find_bit(q).index for q in fresh]
    return parts.result(qc, ESTIMATOR_VARIANT, qc.find_bit(zero[0]).index, fresh_indices)


def _postselected(parts: _Parts, variant: str) -> FidelityCircuit:
    """The compute-uncompute circuit with the trash measured (``c[n..]``) instead of reset."""
    n, trash = parts.n, parts.trash
    data = QuantumRegister(n, "data")
    # c[i] = data_i, c[n + k] = trash qubit k (or its flag), then the aux qubits of the ancilla stage
    creg = ClassicalRegister(n + len(trash) + parts.num_ancillas, "c")
    regs: list = [data]
    flags = None
    if variant == "postselect_flag":
        flags = QuantumRegister(len(trash), "flag")
        regs.append(flags)
    qc = QuantumCircuit(*regs, creg, name=f"qmae_{variant}")
    qc.compose(parts.embed(parts.masked), data, inplace=True)
    qc.compose(parts.encoder, data, inplace=True)
    for k, q in enumerate(trash):
        if flags is None:
            qc.measure(data[q], creg[n + k])  # mid-circuit: a kept shot's trash is |0>
        else:
            qc.cx(data[q], flags[k])  # the flag reads what the trash would have
    aux = parts.decode(qc, data)
    qc.compose(parts.embed(parts.original).inverse(), data, inplace=True)
    qc.measure(data, creg[:n])
    if flags is not None:
        qc.measure(flags, creg[n : n + len(trash)])
    if aux is not None:
        qc.measure(aux, creg[n + len(trash) :])
    return parts.result(qc, variant)


def reconstruction_circuit(
    num_qubits: int,
    *,
    trash_qubits: Sequence[int] | None = None,
    latent_qubits: int | None = None,
    pairs: Sequence[Sequence[int]] | None = None,
    embedding_layers: int | None = None,
    decoder: str = "tied",
    postselect: bool = False,
    flag: bool = False,
    ancillas: int = 0,
    ancilla_pairs: Sequence[Sequence[int]] | None = None,
) -> FidelityCircuit:
    """The reconstruction circuit (``n`` qubits): masked embedding, U, reset the trash, the
    decoder, measure the data qubits. The image is the square root of the outcome frequencies.

    With ``postselect`` the trash is measured mid-circuit into ``c[n..]`` instead of reset, and
    the image comes from the shots where it read 0 (variant ``"reconstruction_postselect"``);
    with ``flag`` too, a CNOT copies each trash qubit onto a fresh flag qubit measured at the end
    instead (variant ``"reconstruction_postselect_flag"``, as ``"postselect_flag"`` does for the
    fidelity): the same kept shots, no mid-circuit measurement, so a noisy simulator samples every
    shot from one density matrix instead of one trajectory per shot. With ``ancillas`` the aux
    qubits of the ancilla stage follow in the last classical bits, and the image comes from the
    shots where they read 0 too.

    Raises:
        ValueError: ``flag`` without ``postselect``.

    Returns:
        A :class:`FidelityCircuit` (``original`` is unused).
    """
    if flag and not postselect:
        raise ValueError("flag=True needs postselect=True: only a post-selected reconstruction measures the trash")
    parts = _Parts(num_qubits, trash_qubits, latent_qubits, pairs, embedding_layers, decoder, ancillas, ancilla_pairs)
    n, trash = parts.n, parts.trash
    data = QuantumRegister(n, "data")
    measured_trash = len(trash) if postselect else 0
    creg = ClassicalRegister(n + measured_trash + parts.num_ancillas, "c")
    variant = RECONSTRUCTION_POSTSELECT_FLAG if flag else RECONSTRUCTION_POSTSELECT if postselect else RECONSTRUCTION
    flags = QuantumRegister(len(trash), "flag") if flag else None
    qc = QuantumCircuit(data, *([flags] if flags is not None else []), creg, name=f"qmae_{variant}")
    qc.compose(parts.embed(parts.masked), data, inplace=True)
    qc.compose(parts.encoder, data, inplace=True)
    for k, q in enumerate(trash):
        if flags is not None:
            qc.cx(data[q], flags[k])  # the flag reads what the trash would have
        elif postselect:
            qc.measure(data[q], creg[n + k])
        else:
            qc.reset(data[q])
    aux = parts.decode(qc, data)
    qc.measure(data, creg[:n])
    if flags is not None:
        qc.measure(flags, creg[n : n + len(trash)])
    if aux is not None:
        qc.measure(aux, creg[n + measured_trash :])
    return parts.result(qc, variant)


class _EmbeddingBuilder:
    """Builds the embedding sub-circuit (exact tree or approximate ladder) for a parameter vector."""

    def __init__(self, num_qubits: int, layers: int | None) -> None:
        if layers is not None and (not isinstance(layers, int) or layers < 1):
            raise ValueError(f"embedding_layers must be None (exact) or a positive integer, got {layers!r}")
        self.num_qubits, self.layers = num_qubits, layers
        self.size = num_embedding_parameters(num_qubits) if layers is None else (layers + 1) * num_qubits

    def __call__(self, parameters: ParameterVector) -> QuantumCircuit:
        if self.layers is None:
            return amplitude_embedding(self.num_qubits, parameters=parameters)
        return ladder_embedding(self.num_qubits, self.layers, parameters=parameters)


def _outcomes(
    counts: Mapping[str, float], width: int | None, variant: str
) -> tuple[list[list[int]], np.ndarray, float]:
    """Bits (``bits[i]`` = classical bit ``i``), weights summing to 1, and the number of shots
    (1 for exact probabilities) of a counts mapping."""
    keys = [k.replace(" ", "") for k in counts]
    if not keys:
        raise ValueError("no counts: the job returned no outcomes")
    if width is not None and any(len(k) != width for k in keys):
        raise ValueError(f"{variant!r} counts need {width}-bit outcomes, got {sorted({len(k) for k in keys})}")
    total = float(sum(counts.values()))
    bits = [[int(b) for b in reversed(key)] for key in keys]
    weights = np.array(list(counts.values()), dtype=float) / total
    shots = total if total > 1.0 + 1e-9 else 1.0
    return bits, weights, shots


def _trash_width(counts: Mapping[str, float], num_qubits: int, variant: str) -> int:
    width = len(next(iter(counts)).replace(" ", "")) if counts else 0
    if width <= num_qubits:
        raise ValueError(
            f"{variant!r} counts need {num_qubits} data bits and the trash bits after them, got {width}-bit outcomes"
        )
    return width - num_qubits


def keep_fraction_from_counts(counts: Mapping[str, float], *, num_qubits: int) -> float:
    """The fraction of shots a post-selected circuit keeps: the trash bits (``c[n..]``) all 0."""
    t = _trash_width(counts, num_qubits, "postselect")
    bits, weights, _ = _outcomes(counts, num_qubits + t, "postselect")
    return float(sum(w for b, w in zip(bits, weights) if not any(b[num_qubits:])))


def fidelity_from_counts(counts: Mapping[str, float], *, variant: str, num_qubits: int) -> tuple[float, float]:
    """Fidelity estimate and its shot-noise standard error from measured counts.

    Works with integer counts or with exact probabilities (then the error is that of one shot),
    and with readout-corrected quasi-probabilities.

    Args:
        counts: outcome bitstrings (Qiskit order: classical bit 0 rightmost) to counts.
        variant: the circuit variant that produced them.
        num_qubits: data qubits ``n``.

    Returns:
        ``(F, stderr)``. For the post-selected variants ``F`` is the fidelity of the kept shots
        and the error is that of a proportion over the kept shots only (the discarded shots carry
        no information about it).

    Raises:
        ValueError: unknown variant, empty counts, or bitstrings of the wrong width.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    width = len(next(iter(counts)).replace(" ", "")) if counts else 0
    if variant in POSTSELECTED_VARIANTS or (variant == "compute_uncompute" and width > num_qubits):
        # the shots whose bits after the data (trash, flags, aux qubits) all read 0 are kept
        t = _trash_width(counts, num_qubits, variant)
        bits, weights, shots = _outcomes(counts, num_qubits + t, variant)
        kept = float(sum(w for b, w in zip(bits, weights) if not any(b[num_qubits:])))
        passed = float(sum(w for b, w in zip(bits, weights) if not any(b)))
        if kept <= 0:
            return 0.0, 1.0  # nothing kept: no information
        f = passed / kept
        kept_shots = max(kept * shots, 1.0)
        return f, float(np.sqrt(max(f * (1 - f), 0.0) / kept_shots))
    width = {"paper": 1, "reset": 1, "destructive": 2 * num_qubits, "compute_uncompute": num_qubits}[variant]
    bits, weights, shots = _outcomes(counts, width, variant)
    values = np.empty(len(bits))
    for idx, b in enumerate(bits):
        if variant in ("paper", "reset"):
            values[idx] = 1.0 if b[0] == 0 else -1.0  # <Z> = P(0) - P(1) = 2 P(0) - 1
        elif variant == "destructive":
            parity = sum(x & y for x, y in zip(b[:num_qubits], b[num_qubits:])) & 1
            values[idx] = 1.0 - 2.0 * parity
        else:
            values[idx] = 1.0 if not any(b) else 0.0
    mean = float(weights @ values)
    var = float(weights @ (values - mean) ** 2)
    return mean, float(np.sqrt(var / shots))
