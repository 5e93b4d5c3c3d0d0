"""Approximate amplitude embedding with a two-qubit budget: a fitted RY + CX ladder.

The exact embedding (:mod:`qmae_qiskit.circuits.embedding`) costs ``2**n - 2`` CNOTs (254 at
n = 8), and real MNIST images save none of them. On today's hardware the two embeddings of a
fidelity circuit alone return noise. This module prepares a state *close* to the image with

    L layers of [RY on every qubit, CX(0,1) CX(1,2) ... CX(n-2,n-1)], then a last RY layer

i.e. ``L * (n - 1)`` CNOTs on a line (no routing on heavy-hex) and ``(L + 1) * n`` angles, the
budget being ``L``. The angles of each image are fitted to maximize ``|<x|ladder(angles)>|^2``
by **Rotosolve** sweeps (Ostaszewski et al., 2021): the overlap is ``a cos(t/2) + b sin(t/2)`` in
each angle ``t``, so every angle in turn is set to its exact optimum ``2 atan2(b, a)``. A sweep
costs two passes through the circuit for the whole batch, so 10,000 images fit in minutes on a
CPU. This is the objective of ``qiskit-addon-aqc-tensor`` (maximize state fidelity with a fixed
ansatz) solved batched in torch: AQC's per-circuit scipy optimization would take hours for the
10,000 + 24,345 MNIST images that evaluation and fine-tuning need.

The fit starts from the same deterministic angles for every image, so an image's angles do not
depend on which batch it was fitted in (hardware records and evaluation agree).

Shapes for n = 8, L layers: vectors ``(B, 256)``, angles ``(B, L + 1, 8)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["LadderFit", "LadderFits", "fit_ladder", "ladder_states", "ladder_cnots", "DEFAULT_SWEEPS"]

DEFAULT_SWEEPS = 200  # mean embedding fidelity 0.967 at L = 16 over the 10,000 MNIST test images (docs/hardware.md)


class LadderFit(NamedTuple):
    """The fitted approximate embedding of a batch.

    Attributes:
        angles: ``(B, L + 1, n)`` RY angles, the ladder circuit's parameters in layer-major order.
        states: ``(B, 2**n)`` float64 unit vectors the ladder prepares (what the hardware sees).
        fidelity: ``(B,)`` ``|<x/|x| | state>|^2``, the embedding fidelity.
    """

    angles: torch.Tensor
    states: torch.Tensor
    fidelity: torch.Tensor


def ladder_cnots(num_qubits: int, layers: int) -> int:
    """CNOTs of the ladder: ``layers * (num_qubits - 1)``."""
    return layers * (num_qubits - 1)


def _cx_permutations(num_qubits: int, device: torch.device) -> list[torch.Tensor]:
    idx = torch.arange(2**num_qubits, device=device)
    # CX(q, q+1) as an index permutation of the state vector (an involution)
    return [torch.where((idx >> q) & 1 == 1, idx ^ (1 << (q + 1)), idx) for q in range(num_qubits - 1)]


def _ry(state: torch.Tensor, q: int, num_qubits: int, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    b = state.shape[0]
    v = state.view(b, 2 ** (num_qubits - 1 - q), 2, 2**q)
    a0, a1 = v[:, :, 0], v[:, :, 1]
    c, s = cos[:, None, None], sin[:, None, None]
    return torch.stack([c * a0 - s * a1, s * a0 + c * a1], dim=2).reshape(b, -1)


def _initial_angles(batch: int, layers: int, num_qubits: int, dtype: torch.dtype) -> torch.Tensor:
    k = torch.arange((layers + 1) * num_qubits, dtype=dtype).reshape(layers + 1, num_qubits)
    return (0.1 * torch.sin(k + 1.0)).expand(batch, -1, -1).clone()  # small, deterministic, not symmetric


def ladder_states(angles: torch.Tensor) -> torch.Tensor:
    """The states ``ladder(angles)|0>``.

    Args:
        angles: ``(B, L + 1, n)``.

    Returns:
        ``(B, 2**n)`` real unit vectors, in ``angles``' dtype.
    """
    batch, rows, n = angles.shape
    perms = _cx_permutations(n, angles.device)
    state = torch.zeros(batch, 2**n, dtype=angles.dtype, device=angles.device)
    state[:, 0] = 1
    for layer in range(rows):
        for q in range(n):
            half = angles[:, layer, q] / 2
            state = _ry(state, q, n, torch.cos(half), torch.sin(half))
        if layer < rows - 1:
            for p in perms:
                state = state[:, p]
    return state


def fit_ladder(vectors: torch.Tensor, layers: int, *, sweeps: int = DEFAULT_SWEEPS, chunk: int = 2048) -> LadderFit:
    """Fit the ladder's angles to each vector (images, flattened; any positive scale).

    Args:
        vectors: ``(B, 2**n)`` real, non-zero.
        layers: ``L >= 1`` CNOT layers (``L * (n - 1)`` CNOTs).
        sweeps: Rotosolve sweeps (each angle optimized once per sweep).
        chunk: images fitted at once (memory: ``chunk * 2**n * (L + 1) * 2n`` floats).

    Returns:
        A :class:`LadderFit`.

    Raises:
        ValueError: ``layers < 1``, ``sweeps < 1``, a length that is not a power of 2, or a zero vector.
    """
    vectors = torch.as_tensor(vectors)
    if vectors.dim() != 2:
        raise ValueError(f"vectors must be (batch, 2**n), got shape {tuple(vectors.shape)}")
    size = vectors.shape[1]
    n = size.bit_length() - 1
    if size < 4 or size & (size - 1):
        raise ValueError(f"vector length must be a power of 2 >= 4, got {size}")
    if not isinstance(layers, int) or layers < 1:
        raise ValueError(f"embedding layers must be a positive integer (each adds {n - 1} CNOTs), got {layers!r}")
    if sweeps < 1:
        raise ValueError(f"sweeps must be >= 1, got {sweeps}")
    norms = vectors.double().norm(dim=1)
    if (norms == 0).any():
        raise ValueError(f"vector(s) {(norms == 0).nonzero().flatten().tolist()} are zero and have no state")
    target = (vectors.double() / norms[:, None]).float()
    angles = (
        torch.cat([_fit_chunk(target[i : i + chunk], layers, sweeps) for i in range(0, len(target), chunk)])
        if len(target)
        else torch.zeros(0, layers + 1, n)
    )
    angles = angles.double()
    states = ladder_states(angles)
    fidelity = (states * (vectors.double() / norms[:, None])).sum(1) ** 2
    return LadderFit(angles, states, fidelity)


@torch.no_grad()
def _fit_chunk(target: torch.Tensor, layers: int, sweeps: int) -> torch.Tensor:
    """Rotosolve, sweeping alternately forward and backward through the circuit.

    A forward sweep updates each angle from the stored *bras* of the previous backward sweep
    (ops after it, already final) and the running ket; a backward sweep uses the stored *kets* of
    the forward sweep and the running bra. Every pass through the circuit is an update pass.
    """
    batch, size = target.shape
    n = size.bit_length() - 1
    perms = _cx_permutations(n, target.device)
    theta = _initial_angles(batch, layers, n, target.dtype).to(target.device)
    ops: list[tuple[int, int]] = []  # (layer, qubit) for an RY, (-1, k) for CX(k, k+1)
    for layer in range(layers + 1):
        ops += [(layer, q) for q in range(n)]
        if layer < layers:
            ops += [(-1, k) for k in range(n - 1)]

    def optimum(bra: torch.Tensor, ket: torch.Tensor, q: int) -> torch.Tensor:
        """Half-angle maximizing <bra| RY(t)_q |ket> = a cos(t/2) + b sin(t/2)."""
        vb, vk = bra.view(batch, -1, 2, 2**q), ket.view(batch, -1, 2, 2**q)
        a = torch.linalg.vecdot(bra, ket)
        b = (vb[:, :, 1] * vk[:, :, 0] - vb[:, :, 0] * vk[:, :, 1]).sum((1, 2))
        return torch.atan2(b, a)

    # the first backward pass only stores bras (no update): start from the deterministic angles
    stored: list[torch.Tensor] = [target] * len(ops)
    bra = target
    for k in range(len(ops) - 1, -1, -1):
        stored[k] = bra
        layer, q = ops[k]
        if layer < 0:
            bra = bra[:, perms[q]]
        else:
            half = theta[:, layer, q] / 2
            bra = _ry(bra, q, n, torch.cos(half), -torch.sin(half))
    for sweep in range(sweeps):
        if sweep % 2 == 0:  # forward: running ket, stored bras; store kets
            ket = torch.zeros_like(target)
            ket[:, 0] = 1
            for k, (layer, q) in enumerate(ops):
                if layer < 0:
                    stored[k] = ket
                    ket = ket[:, perms[q]]
                    continue
                half = optimum(stored[k], ket, q)
                theta[:, layer, q] = 2 * half
                stored[k] = ket
                ket = _ry(ket, q, n, torch.cos(half), torch.sin(half))
        else:  # backward: running bra, stored kets; store bras
            bra = target
            for k in range(len(ops) - 1, -1, -1):
                layer, q = ops[k]
                if layer < 0:
                    stored[k] = bra
                    bra = bra[:, perms[q]]
                    continue
                half = optimum(bra, stored[k], q)
                theta[:, layer, q] = 2 * half
                stored[k] = bra
                bra = _ry(bra, q, n, torch.cos(half), -torch.sin(half))
    return theta


class LadderFits:
    """Ladder fits cached by content (the last ``size``): the states a model embeds and the angles
    its circuits bind come from one fit, so a model's fidelity and reconstruction of the same
    images fit once."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._fits: dict[tuple[int, str], LadderFit] = {}

    def fit(self, vectors: torch.Tensor, layers: int) -> LadderFit:
        """The fit of ``(B, 2**n)`` pixel vectors with ``layers`` ladder layers."""
        import hashlib

        data = vectors.detach().to("cpu", torch.float64).contiguous()
        key = (layers, hashlib.sha1(data.numpy().tobytes()).hexdigest())
        if key not in self._fits:
            if len(self._fits) >= self.size:
                self._fits.pop(next(iter(self._fits)))
            self._fits[key] = fit_ladder(data, layers)
        return self._fits[key]
