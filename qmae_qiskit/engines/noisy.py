"""The exact engine with a device's errors injected: Pauli trajectories, batched and differentiable.

A *twirled* device error is a Pauli channel: after each two-qubit block of the circuit, the block's
pair suffers the Pauli ``P_j`` with probability ``p_j`` (``j`` over the 16 two-qubit Paulis, ``I``
included). A Pauli channel is a mixture of unitaries, so the noisy circuit's fidelity is the average
over *trajectories* (one Pauli drawn per block) of a noiseless circuit's fidelity, and each
trajectory's circuit is the exact engine's with its blocks multiplied by the drawn Paulis:

    encoder block k:   P_k B_k              (the error after the block)
    decoder block k:   B_k^dagger, then P'_k   so the decoder's adjoint, which the closed form
                       applies to the reference, is a product of  B_k P'_k  in encoder order

Each image of a batch gets its own trajectory (drawn afresh at every call, or given), so the
batch's mean fidelity is an unbiased estimate of the noisy mean, and its gradient one of the noisy
gradient: training through it is training for the device (QuantumNAT, Wang et al. 2022, injects
errors the same way). Images that share a trajectory are applied together, so the cost is the exact
engine's "few images" path once per distinct trajectory in the batch.

The noise is :class:`BlockNoise`: a Pauli channel per encoder block and per decoder block (where the
errors sit in a Qiskit circuit: after each block, ``tests/engines/test_noisy.py`` checks the averages
against Aer's density-matrix simulation of the same circuit with the same ``NoiseModel``, exactly by
enumerating every trajectory at n = 2 and within 4 standard errors by sampling at n = 4). The
embedding, the reset and the readout are noiseless here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .branches import Branches
from .exact import ExactEngine, _Overlaps

__all__ = ["PAULI_LABELS", "BlockNoise", "NoisyEngine", "pauli_matrices"]

_ONE = ("I", "X", "Y", "Z")
# Pauli j = a + 4 b: sigma_a on the block's first qubit (its low index bit), sigma_b on the second;
# as a Qiskit label the first qubit's letter is the last character
PAULI_LABELS = tuple(_ONE[j // 4] + _ONE[j % 4] for j in range(16))


def pauli_matrices(dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """The 16 two-qubit Paulis ``(16, 4, 4)`` in the blocks' index order ``b0 + 2 b1`` (see
    :data:`PAULI_LABELS`)."""
    one = torch.tensor(
        [[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=torch.complex128
    )
    return torch.stack([torch.kron(one[j // 4], one[j % 4]) for j in range(16)]).to(dtype)


@dataclass(frozen=True)
class BlockNoise:
    """A Pauli channel after every two-qubit block.

    Attributes:
        encoder: ``(K, 16)`` probabilities of the 16 Paulis (:data:`PAULI_LABELS`) after encoder
            block ``k`` (circuit order), each row summing to 1.
        decoder: ``(K, 16)`` the same after the decoder's block ``B_k^dagger`` (indexed like the
            encoder's blocks, not in the decoder's time order).
        input_error: the embedding's error as a global depolarizing channel on the encoder's input
            state, ``(1 - q) |psi><psi| + q I / 2^n``: with probability ``q`` a trajectory starts
            from a uniformly drawn basis state instead (0: a noiseless embedding).
    """

    encoder: torch.Tensor
    decoder: torch.Tensor
    input_error: float = 0.0

    def __post_init__(self) -> None:
        for name in ("encoder", "decoder"):
            p = torch.as_tensor(getattr(self, name), dtype=torch.float64)
            if p.dim() != 2 or p.shape[1] != 16:
                raise ValueError(f"{name} must be (blocks, 16) Pauli probabilities, got shape {tuple(p.shape)}")
            if (
                not torch.isfinite(p).all()
                or (p < 0).any()
                or not torch.allclose(p.sum(1), torch.ones(len(p)).double())
            ):
                raise ValueError(f"{name}'s rows must be probabilities (>= 0, summing to 1)")
            object.__setattr__(self, name, p)
        if self.encoder.shape != self.decoder.shape:
            raise ValueError("the encoder and the decoder have one channel per block each: their shapes must match")
        if not (isinstance(self.input_error, (int, float)) and 0 <= self.input_error <= 1):
            raise ValueError(f"input_error is a probability in [0, 1], got {self.input_error!r}")

    @classmethod
    def depolarizing(cls, num_blocks: int, error: float | Sequence[float], *, input_error: float = 0.0) -> BlockNoise:
        """Two-qubit depolarizing noise of parameter ``error`` after every block (Qiskit's
        ``depolarizing_error(error, 2)``: the identity with ``1 - 15 error / 16``, each other Pauli
        with ``error / 16``); one value, or one per block (the same for encoder and decoder)."""
        lam = torch.as_tensor(error, dtype=torch.float64).expand(num_blocks)
        if ((lam < 0) | (lam > 16 / 15)).any():
            raise ValueError(f"a depolarizing parameter is in [0, 16/15], got {error!r}")
        p = (lam / 16)[:, None].repeat(1, 16)
        p[:, 0] = 1 - 15 * lam / 16
        return cls(p, p.clone(), input_error)

    @property
    def num_blocks(self) -> int:
        return int(self.encoder.shape[0])

    def sample(self, count: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` trajectories: ``(count, K)`` Pauli indices after the encoder's and the decoder's blocks."""
        enc = torch.multinomial(self.encoder.float(), count, replacement=True, generator=generator).T
        dec = torch.multinomial(self.decoder.float(), count, replacement=True, generator=generator).T
        return enc.contiguous(), dec.contiguous()

    def sample_inputs(self, count: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(count,)`` per trajectory: ``-1`` (the embedded image) or the basis state it starts
        from instead (probability :attr:`input_error`)."""
        if not self.input_error:
            return torch.full((count,), -1, dtype=torch.long)
        hit = torch.rand(count, generator=generator) < self.input_error
        basis = torch.randint(dim, (count,), generator=generator)
        return torch.where(hit, basis, torch.full_like(basis, -1))


class NoisyEngine:
    """The exact engine's fidelity under :class:`BlockNoise`, one Pauli trajectory per image.

    Args:
        num_qubits, pairs, trash_qubits, dtype, fuse_width: as :class:`~qmae_qiskit.engines.exact.ExactEngine`
            (the blocks ansatz, no ancillas).
        noise: the Pauli channel after each block (one row per encoder pair).
        generator: the random generator of the trajectories (default: torch's global one).

    Raises:
        ValueError: noise for another number of blocks.
    """

    name = "noisy"

    def __init__(
        self,
        num_qubits: int,
        pairs: Sequence[tuple[int, int]],
        trash_qubits: Sequence[int],
        *,
        noise: BlockNoise,
        dtype: torch.dtype = torch.complex64,
        fuse_width: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.exact = ExactEngine(num_qubits, pairs, trash_qubits, dtype=dtype, fuse_width=fuse_width)
        if noise.num_blocks != len(self.exact.pairs):
            raise ValueError(
                f"noise has channels for {noise.num_blocks} blocks, the circuit has {len(self.exact.pairs)}"
            )
        self.num_qubits = num_qubits
        self.noise = noise
        self.generator = generator
        self.dtype = dtype

    def branches(
        self,
        theta: torch.Tensor,
        masked: torch.Tensor,
        original: torch.Tensor,
        *,
        decoder: torch.Tensor | None = None,
        trajectories: tuple[torch.Tensor, torch.Tensor] | None = None,
        inputs: torch.Tensor | None = None,
    ) -> Branches:
        """Per image, the branches of its own trajectory (their mean over many trajectories is the
        noisy circuit's): differentiable in ``theta``, ``decoder`` and ``masked``.

        Args:
            theta, masked, original, decoder: as :meth:`ExactEngine.branches`.
            trajectories: ``(B, K)`` encoder and decoder Pauli indices per image (default: drawn
                from the noise).
            inputs: ``(B,)`` per image ``-1`` or the basis state its trajectory starts from (the
                embedding's error; default: drawn from the noise).
        """
        exact = self.exact
        batch = masked.shape[0]
        enc, dec = trajectories if trajectories is not None else self.noise.sample(batch, self.generator)
        if enc.shape != (batch, self.noise.num_blocks) or dec.shape != enc.shape:
            raise ValueError(f"trajectories must be two ({batch}, {self.noise.num_blocks}) index tensors")
        paulis = pauli_matrices(self.dtype).to(theta.device)
        blocks = exact.blocks(theta)  # (K, 4, 4)
        back = blocks if decoder is None else exact.blocks(decoder)
        psi = exact._normalize(masked, theta.device).to(self.dtype)
        chi = exact._normalize(original, theta.device).to(self.dtype)
        dim = psi.shape[1]
        starts = inputs if inputs is not None else self.noise.sample_inputs(batch, dim, self.generator)
        starts = starts.to(psi.device)
        if (starts >= 0).any():  # the embedding failed: the trajectory starts from a basis state
            basis = torch.nn.functional.one_hot(starts.clamp_min(0), dim).to(psi.dtype)
            psi = torch.where((starts >= 0)[:, None], basis, psi)
        latent = 2 ** (self.num_qubits - len(exact.trash_qubits))
        # images that share a trajectory go through its circuit together
        keys = torch.cat([enc, dec], dim=1)
        unique, which = torch.unique(keys.cpu(), dim=0, return_inverse=True)
        phis, etas, rows = [], [], []
        for u in range(len(unique)):
            r = (which == u).nonzero().flatten().to(masked.device)
            e, d = unique[u, : enc.shape[1]].to(theta.device), unique[u, enc.shape[1] :].to(theta.device)
            phi = exact.apply_gates(exact.super_gates_of(paulis[e] @ blocks), psi[r])
            eta = exact.apply_gates(exact.super_gates_of(back @ paulis[d]), chi[r])
            phis.append(phi)
            etas.append(eta)
            rows.append(r)
        order = torch.cat(rows).argsort()
        phi, eta = torch.cat(phis)[order], torch.cat(etas)[order]
        if not exact._identity_order:
            phi, eta = phi[:, exact._order], eta[:, exact._order]
        return Branches(*_Overlaps.apply(phi.reshape(batch, -1, latent), eta[:, :latent]))

    def fidelity(
        self, theta: torch.Tensor, masked: torch.Tensor, original: torch.Tensor, **kwargs: object
    ) -> torch.Tensor:
        """``(B,)`` each image's trajectory's reset fidelity (:meth:`branches`)."""
        return self.branches(theta, masked, original, **kwargs).fidelity  # type: ignore[arg-type]
