"""The exact engine: the QMAE fidelity of a whole batch as dense torch linear algebra.

The circuit's answer has a closed form. With ``|psi>`` the (normalized) masked image,
``|chi>`` the original, ``phi = U psi`` and ``eta = U chi`` split as (trash value ``t``, latent
value ``a``), resetting the trash and decoding gives

    rho_out = U^dagger (Tr_trash |phi><phi|  (x)  |0><0|_trash) U,
    F = <chi| rho_out |chi> = sum_t | sum_a conj(eta[0, a]) phi[t, a] |^2,

so one training step needs only ``U`` applied to both batches (two matrix products) and no
density matrix. ``U`` is built once per step from the 4x4 blocks (small gate applications on the
identity), and autograd differentiates all of it. The tests pin this to Qiskit's statevector and
Aer results on the circuits of :mod:`qmae_qiskit.circuits.fidelity`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..circuits.ansatz import BLOCK_PARAMETERS

__all__ = ["ExactEngine", "block_matrices"]

# CNOTs in the block's 2-qubit basis index b0 + 2 b1 (Qiskit order: q0 is the low bit).
_CX10 = torch.tensor([0, 1, 3, 2])  # control q1, target q0: |10> <-> |11>  (indices 2 <-> 3)
_CX01 = torch.tensor([0, 3, 2, 1])  # control q0, target q1: |01> <-> |11>  (indices 1 <-> 3)


def _rz(a: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    half = torch.polar(torch.ones_like(a), a / 2).to(cdtype)  # e^{i a/2}
    zero = torch.zeros_like(half)
    return torch.stack([torch.stack([half.conj(), zero], -1), torch.stack([zero, half], -1)], -2)


def _ry(a: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    c, s = torch.cos(a / 2), torch.sin(a / 2)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2).to(cdtype)


def _zyz(p: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    # rz(p0), ry(p1), rz(p2) in time order -> RZ(p2) @ RY(p1) @ RZ(p0)
    return _rz(p[:, 2], cdtype) @ _ry(p[:, 1], cdtype) @ _rz(p[:, 0], cdtype)


def _kron(high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """Batched kron for a gate ``high`` on q1 and ``low`` on q0 (index b0 + 2 b1)."""
    return torch.einsum("pab,pcd->pacbd", high, low).reshape(-1, 4, 4)


def block_matrices(theta: torch.Tensor, cdtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """The 4x4 unitaries of :func:`qmae_qiskit.circuits.two_qubit_block` for each row of theta.

    Args:
        theta: ``(P, 15)`` real tensor, one row per block.
        cdtype: complex dtype of the result.

    Returns:
        ``(P, 4, 4)`` matrices, index ``b0 + 2 b1`` (``b0`` the block's first qubit).
    """
    eye = torch.eye(2, dtype=cdtype).expand(theta.shape[0], 2, 2)
    layer1 = _kron(_zyz(theta[:, 3:6], cdtype), _zyz(theta[:, 0:3], cdtype))
    layer2 = _kron(_ry(theta[:, 7], cdtype), _rz(theta[:, 6], cdtype))
    layer3 = _kron(_ry(theta[:, 8], cdtype), eye)
    layer4 = _kron(_zyz(theta[:, 12:15], cdtype), _zyz(theta[:, 9:12], cdtype))
    # a CNOT permutes rows: (CX @ M) = M[perm]
    m = layer1[:, _CX10]
    m = (layer2 @ m)[:, _CX01]
    m = (layer3 @ m)[:, _CX10]
    return layer4 @ m


class ExactEngine:
    """Batched, differentiable, exact QMAE fidelity and reconstruction.

    Args:
        num_qubits: data qubits ``n``.
        pairs: the encoder's qubit pairs, in circuit order.
        trash_qubits: data qubits reset between encoder and decoder.
        dtype: complex dtype of the simulation (``torch.complex64`` or ``torch.complex128``).
    """

    name = "exact"

    def __init__(
        self,
        num_qubits: int,
        pairs: Sequence[tuple[int, int]],
        trash_qubits: Sequence[int],
        *,
        dtype: torch.dtype = torch.complex64,
    ) -> None:
        if dtype not in (torch.complex64, torch.complex128):
            raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
        self.num_qubits = num_qubits
        self.pairs = [tuple(p) for p in pairs]
        self.trash_qubits = tuple(trash_qubits)
        self.dtype = dtype
        latent = [q for q in range(num_qubits) if q not in self.trash_qubits]
        # basis index of (trash value t, latent value a): lets F be a reshape, not a gather per step
        dim = 2**num_qubits
        order = torch.empty(dim, dtype=torch.long)
        for t in range(2 ** len(self.trash_qubits)):
            for a in range(2 ** len(latent)):
                idx = sum(((t >> k) & 1) << q for k, q in enumerate(self.trash_qubits))
                idx += sum(((a >> k) & 1) << q for k, q in enumerate(latent))
                order[t * 2 ** len(latent) + a] = idx
        self._order = order

    def unitary(self, theta: torch.Tensor) -> torch.Tensor:
        """The encoder's ``(2**n, 2**n)`` unitary ``U`` (Qiskit's index order)."""
        n = self.num_qubits
        blocks = block_matrices(theta.to(self.dtype.to_real()).reshape(-1, BLOCK_PARAMETERS), self.dtype)
        # rows of `state` are U e_b; each gate acts on the (.., bit j, .., bit i, ..) axes
        state = torch.eye(2**n, dtype=self.dtype, device=theta.device)
        for gate, (i, j) in zip(blocks, self.pairs):
            lo, hi = min(i, j), max(i, j)
            g = gate.reshape(2, 2, 2, 2)  # [out_j, out_i, in_j, in_i]
            if i > j:  # block's first qubit is the higher one: swap the roles of the axes
                g = g.permute(1, 0, 3, 2)
            view = state.reshape(-1, 2, 2 ** (hi - lo - 1), 2, 2**lo)
            state = torch.einsum("HLhl,ahblc->aHbLc", g, view).reshape(2**n, 2**n)
        return state.transpose(0, 1)

    def _prepare(self, vectors: torch.Tensor, device: torch.device) -> torch.Tensor:
        v = vectors.to(device=device, dtype=self.dtype.to_real())
        norm = v.norm(dim=1, keepdim=True)
        # an all-zero masked image has no state: it contributes F = 0 (see QMAE.fidelity)
        return (v / torch.where(norm > 0, norm, torch.ones_like(norm))).to(self.dtype)

    def fidelity(self, theta: torch.Tensor, masked: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        """F for each image of the batch.

        Args:
            theta: encoder weights, ``(15 * len(pairs),)``.
            masked: ``(B, 2**n)`` real encoder inputs (the masked, token-filled images).
            original: ``(B, 2**n)`` real references (the unmasked images).

        Returns:
            ``(B,)`` real fidelities in [0, 1].
        """
        batch = masked.shape[0]
        u = self.unitary(theta)[self._order]  # rows reordered to (trash, latent)
        states = self._prepare(torch.cat([masked, original]), theta.device)
        out = (states @ u.transpose(0, 1)).reshape(2 * batch, -1, 2 ** (self.num_qubits - len(self.trash_qubits)))
        phi, eta0 = out[:batch], out[batch:, 0]
        overlap = torch.einsum("ba,bta->bt", eta0.conj(), phi)
        return overlap.abs().square().sum(1)

    def reconstruct(self, theta: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities of the decoder's output (the diagonal of ``rho_out``).

        Returns:
            ``(B, 2**n)`` real, each row summing to 1 (0 for an all-zero input).
        """
        u = self.unitary(theta)
        reordered = u[self._order]
        phi = self._prepare(masked, theta.device) @ reordered.transpose(0, 1)
        phi = phi.reshape(masked.shape[0], -1, 2 ** (self.num_qubits - len(self.trash_qubits)))
        latent_dim = phi.shape[-1]
        # put each trash branch back at trash = 0 and decode: U^dagger (phi_t (x) |0>)
        decoded = phi @ reordered[:latent_dim].conj()  # (B, T, 2**n)
        return decoded.abs().square().sum(1)
