"""The exact engine: the QMAE fidelity of a whole batch as dense torch linear algebra.

The circuit's answer has a closed form. With ``|psi>`` the (normalized) masked image,
``|chi>`` the original, ``phi = U psi`` and ``eta = U chi`` split as (trash value ``t``, latent
value ``a``), resetting the trash and decoding gives

    rho_out = U^dagger (Tr_trash |phi><phi|  (x)  |0><0|_trash) U,
    F = <chi| rho_out |chi> = sum_t | sum_a conj(eta[0, a]) phi[t, a] |^2,

so one training step needs ``U`` applied to the two batches and no density matrix.

Speed (see ``docs/benchmarks.md``): applying the 28 blocks one by one to a 256x256 matrix is
dominated by the memory copies of 28 axis permutations, forward and backward. So consecutive blocks
are first fused into a few *super-gates* on ``K = min(n, 5)`` qubits (6 of them at n = 8; each a
32x32 matrix built from the 4x4 blocks with one gather and a short chain of tiny batched products),
and only those are applied to the big matrix, each with one permutation copy. Autograd
differentiates all of it. The tests pin this to Qiskit's ``Operator``, ``Statevector`` and Aer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..circuits.ansatz import BLOCK_PARAMETERS

__all__ = ["ExactEngine", "block_matrices", "fuse_pairs", "trash_latent_order"]

# CNOTs in the block's 2-qubit basis index b0 + 2 b1 (Qiskit order: q0 is the low bit).
_CX10 = torch.tensor([0, 1, 3, 2])  # control q1, target q0: |10> <-> |11>  (indices 2 <-> 3)
_CX01 = torch.tensor([0, 3, 2, 1])  # control q0, target q1: |01> <-> |11>  (indices 1 <-> 3)

# The block's eight one-qubit gates as ZYZ triples (first, second, third angle in time order), as
# column indices into theta padded with a zero column (index 15): layer 1 (q0, q1), layer 2 (RZ q0,
# RY q1), layer 3 (nothing on q0, RY q1), layer 4 (q0, q1). See circuits/ansatz.py.
_Z = BLOCK_PARAMETERS
_ZYZ_INDEX = torch.tensor(
    [[0, 1, 2], [3, 4, 5], [6, _Z, _Z], [_Z, 7, _Z], [_Z, _Z, _Z], [_Z, 8, _Z], [9, 10, 11], [12, 13, 14]]
)


def _zyz(angles: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    """``RZ(c) RY(b) RZ(a)`` for ``angles[..., (a, b, c)]``, in closed form: shape ``(..., 2, 2)``."""
    a, b, c = angles.unbind(-1)
    cos, sin = torch.cos(b / 2).to(cdtype), torch.sin(b / 2).to(cdtype)
    plus = torch.polar(torch.ones_like(a), (a + c) / 2).to(cdtype)  # e^{i (a+c)/2}
    minus = torch.polar(torch.ones_like(a), (a - c) / 2).to(cdtype)  # e^{i (a-c)/2}
    top = torch.stack([plus.conj() * cos, -minus * sin], -1)
    bottom = torch.stack([minus.conj() * sin, plus * cos], -1)
    return torch.stack([top, bottom], -2)


def block_matrices(theta: torch.Tensor, cdtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """The 4x4 unitaries of :func:`qmae_qiskit.circuits.two_qubit_block` for each row of theta.

    Args:
        theta: ``(P, 15)`` real tensor, one row per block.
        cdtype: complex dtype of the result.

    Returns:
        ``(P, 4, 4)`` matrices, index ``b0 + 2 b1`` (``b0`` the block's first qubit).
    """
    padded = torch.cat([theta, theta.new_zeros(theta.shape[0], 1)], dim=1)
    ones = _zyz(padded[:, _ZYZ_INDEX.to(theta.device)], cdtype).reshape(-1, 4, 2, 2, 2)  # (P, layer, qubit, 2, 2)
    # kron(gate on q1, gate on q0) in index b0 + 2 b1, for the four layers at once
    layers = torch.einsum("plab,plcd->placbd", ones[:, :, 1], ones[:, :, 0]).reshape(-1, 4, 4, 4)
    # a CNOT permutes rows: (CX @ M) = M[perm]
    m = layers[:, 0][:, _CX10]
    m = (layers[:, 1] @ m)[:, _CX01]
    m = (layers[:, 2] @ m)[:, _CX10]
    return layers[:, 3] @ m


def trash_latent_order(num_qubits: int, trash_qubits: Sequence[int]) -> list[int]:
    """Qiskit basis indices listed in (trash value, latent value) order, trash value major."""
    latent = [q for q in range(num_qubits) if q not in trash_qubits]
    order = []
    for t in range(2 ** len(trash_qubits)):
        for a in range(2 ** len(latent)):
            idx = sum(((t >> k) & 1) << q for k, q in enumerate(trash_qubits))
            order.append(idx + sum(((a >> k) & 1) << q for k, q in enumerate(latent)))
    return order


def fuse_pairs(num_qubits: int, pairs: Sequence[tuple[int, int]], width: int) -> list[tuple[list[int], list[int]]]:
    """Split the block sequence into runs whose qubits fit in ``width`` qubits.

    Returns:
        ``(qubits, block_indices)`` per super-gate, in time order; ``qubits`` always has ``width``
        entries (padded with idle qubits) so that all super-gates have one shape.
    """
    groups: list[tuple[list[int], list[int]]] = []
    qubits: list[int] = []
    blocks: list[int] = []
    for k, pair in enumerate(pairs):
        new = [q for q in pair if q not in qubits]
        if len(qubits) + len(new) > width:
            groups.append((qubits, blocks))
            qubits, blocks = [], []
            new = list(dict.fromkeys(pair))
        qubits, blocks = qubits + new, blocks + [k]
    groups.append((qubits, blocks))
    for qs, _ in groups:
        qs.extend(q for q in range(num_qubits) if q not in qs and len(qs) < width)
    return groups


class ExactEngine:
    """Batched, differentiable, exact QMAE fidelity and reconstruction.

    Args:
        num_qubits: data qubits ``n``.
        pairs: the encoder's qubit pairs, in circuit order.
        trash_qubits: data qubits reset between encoder and decoder.
        dtype: complex dtype of the simulation (``torch.complex64`` or ``torch.complex128``).
        fuse_width: qubits per fused super-gate (default ``min(n, 5)``; 2 applies the blocks one by one).
    """

    name = "exact"

    def __init__(
        self,
        num_qubits: int,
        pairs: Sequence[tuple[int, int]],
        trash_qubits: Sequence[int],
        *,
        dtype: torch.dtype = torch.complex64,
        fuse_width: int | None = None,
    ) -> None:
        if dtype not in (torch.complex64, torch.complex128):
            raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
        width = min(num_qubits, 5) if fuse_width is None else fuse_width
        if not 2 <= width <= num_qubits:
            raise ValueError(f"fuse_width must be in 2..{num_qubits}, got {fuse_width}")
        self.num_qubits = num_qubits
        self.pairs = [tuple(p) for p in pairs]
        self.trash_qubits = tuple(trash_qubits)
        self.dtype = dtype
        self.width = width
        # basis index of (trash value t, latent value a): lets F be a reshape, not a gather per step
        self._order = torch.as_tensor(trash_latent_order(num_qubits, self.trash_qubits))
        # with the default trash (the highest qubits) the order is the identity: skip the gather
        self._identity_order = bool(torch.equal(self._order, torch.arange(2**num_qubits)))
        self._plan(width)

    def _plan(self, width: int) -> None:
        """Precompute, per super-gate, where each block's 4x4 entries go in its 2^w x 2^w matrix."""
        self.groups = fuse_pairs(self.num_qubits, self.pairs, width)
        size = 2**width
        local = torch.arange(size)
        depth = max(len(blocks) for _, blocks in self.groups)
        # index[l, g] maps each (row, col) of layer l of group g into the flattened, padded block
        # table: 16 * block + entry, or the "one" / "zero" slots at the end (identity padding).
        one, zero = 16 * len(self.pairs), 16 * len(self.pairs) + 1
        index = torch.full((depth, len(self.groups), size, size), zero, dtype=torch.long)
        for g, (qubits, blocks) in enumerate(self.groups):
            for layer in range(depth):
                if layer >= len(blocks):
                    index[layer, g].fill_diagonal_(one)
                    continue
                k = blocks[layer]
                i, j = self.pairs[k]
                pi, pj = qubits.index(i), qubits.index(j)
                rest = ~((1 << pi) | (1 << pj))
                r, c = local[:, None], local[None, :]
                same = (r & rest) == (c & rest)
                entry = (((r >> pi) & 1) + 2 * ((r >> pj) & 1)) * 4 + ((c >> pi) & 1) + 2 * ((c >> pj) & 1)
                index[layer, g] = torch.where(same, 16 * k + entry, torch.full_like(entry, zero))
        self._index = index
        self._devices: dict[torch.device, torch.Tensor] = {}

    def super_gates(self, theta: torch.Tensor) -> torch.Tensor:
        """The fused gates, ``(groups, 2**w, 2**w)``, local index bit m = qubit ``groups[g][0][m]``."""
        blocks = block_matrices(theta.to(self.dtype.to_real()).reshape(-1, BLOCK_PARAMETERS), self.dtype)
        table = torch.cat([blocks.reshape(-1), blocks.new_tensor([1, 0])])
        index = self._devices.get(theta.device)
        if index is None:
            index = self._devices[theta.device] = self._index.to(theta.device)
        layers = table[index]  # (depth, groups, 2^w, 2^w)
        gates = layers[0]
        for layer in layers[1:]:
            gates = layer @ gates
        return gates

    def apply_left(self, theta: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        """``U @ matrix`` for a ``(2**n, R)`` complex matrix (columns are states)."""
        n, w = self.num_qubits, self.width
        gates = self.super_gates(theta)
        cols = matrix.shape[1]
        # The tensor is (2, ..., 2, R) with a lazily tracked qubit order: axes[p] is the qubit of
        # dimension p. Each super-gate moves its qubits to the front (one copy, of contiguous
        # R-element runs, so it is cheap) and is a single (2^w x 2^w) @ (2^w x rest) product.
        x = matrix.reshape((2,) * n + (cols,))
        axes = list(range(n - 1, -1, -1))  # reshape puts the most significant bit (qubit n-1) first
        for gate, (qubits, _) in zip(gates, self.groups):
            target = qubits[::-1] + [q for q in axes if q not in qubits]  # the gate's local bit 0 is qubits[0]
            x = x.permute([axes.index(q) for q in target] + [n]).reshape(2**w, -1)
            x = (gate @ x).reshape((2,) * n + (cols,))
            axes = target
        x = x.permute([axes.index(q) for q in range(n - 1, -1, -1)] + [n])
        return x.reshape(2**n, cols)

    def apply(self, theta: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``U`` applied to each row of ``states`` (``(M, 2**n)`` complex): ``states @ U^T``."""
        return self.apply_left(theta, states.transpose(0, 1)).transpose(0, 1)

    def unitary(self, theta: torch.Tensor) -> torch.Tensor:
        """The encoder's ``(2**n, 2**n)`` unitary ``U`` (Qiskit's index order)."""
        return self.apply_left(theta, torch.eye(2**self.num_qubits, dtype=self.dtype, device=theta.device))

    def _reorder_rows(self, matrix: torch.Tensor) -> torch.Tensor:
        return matrix if self._identity_order else matrix[self._order]

    def _normalize(self, vectors: torch.Tensor, device: torch.device) -> torch.Tensor:
        v = vectors.to(device=device, dtype=self.dtype.to_real())
        norm = v.norm(dim=1, keepdim=True)
        # an all-zero masked image has no state: it contributes F = 0 (see QMAE.fidelity)
        return v / torch.where(norm > 0, norm, torch.ones_like(norm))

    def fidelity(self, theta: torch.Tensor, masked: torch.Tensor, original: torch.Tensor, *, with_trash: bool = False):
        """F for each image of the batch.

        Args:
            theta: encoder weights, ``(15 * len(pairs),)``.
            masked: ``(B, 2**n)`` real encoder inputs (the masked, token-filled images).
            original: ``(B, 2**n)`` real references (the unmasked images).
            with_trash: also return ``P(trash = 0)`` after the encoder, ``||phi_0||^2`` (the
                compression fidelity of Romero et al.'s quantum autoencoder).

        Returns:
            ``(B,)`` real fidelities in [0, 1] (and ``(B,)`` trash-zero probabilities).
        """
        batch, dim = masked.shape[0], 2**self.num_qubits
        latent = 2 ** (self.num_qubits - len(self.trash_qubits))
        psi = self._normalize(masked, theta.device)
        chi = self._normalize(original, theta.device)
        if 2 * batch > dim:
            # Build U once and use that the images are *real*: psi @ U^T is two real products
            # (real and imaginary rows of U stacked), half the work of a complex one.
            u = self._reorder_rows(self.unitary(theta))  # rows ordered (trash value, latent value)
            parts = torch.view_as_real(u).permute(2, 0, 1)  # (re/im, 2^n rows, 2^n cols)
            phi = torch.view_as_complex((psi @ parts.reshape(-1, dim).transpose(0, 1)).reshape(batch, 2, dim).transpose(1, 2).contiguous())
            eta0 = torch.view_as_complex((chi @ parts[:, :latent].reshape(-1, dim).transpose(0, 1)).reshape(batch, 2, latent).transpose(1, 2).contiguous())
        else:  # few images: apply the super-gates to them directly, no U
            out = self._reorder_rows(self.apply(theta, torch.cat([psi, chi]).to(self.dtype)).transpose(0, 1)).transpose(0, 1)
            phi, eta0 = out[:batch], out[batch:, :latent]
        phi = phi.reshape(batch, -1, latent)
        overlap = torch.einsum("ba,bta->bt", eta0.conj(), phi)
        fid = overlap.abs().square().sum(1)
        if with_trash:
            return fid, phi[:, 0].abs().square().sum(1)
        return fid

    def reconstruct(self, theta: torch.Tensor, masked: torch.Tensor, *, postselect: bool = False) -> torch.Tensor:
        """Pixel probabilities of the decoder's output (the diagonal of ``rho_out``).

        Args:
            postselect: keep only the trash = 0 branch (measure the trash and discard the other
                outcomes) instead of resetting it.

        Returns:
            ``(B, 2**n)`` real, each row summing to 1 (0 for an all-zero input).
        """
        reordered = self._reorder_rows(self.unitary(theta))
        phi = self._normalize(masked, theta.device).to(self.dtype) @ reordered.transpose(0, 1)
        phi = phi.reshape(masked.shape[0], -1, 2 ** (self.num_qubits - len(self.trash_qubits)))
        latent_dim = phi.shape[-1]
        if postselect:
            phi = phi[:, :1]
        # put each trash branch back at trash = 0 and decode: U^dagger (phi_t (x) |0>)
        decoded = phi @ reordered[:latent_dim].conj()  # (B, T, 2**n)
        probs = decoded.abs().square().sum(1)
        if postselect:
            total = probs.sum(1, keepdim=True)
            probs = probs / torch.where(total > 0, total, torch.ones_like(total))
        return probs
