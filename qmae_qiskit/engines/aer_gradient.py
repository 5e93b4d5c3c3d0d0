"""Exact gradients of the QMAE fidelities from Aer state vectors (the estimator engine's fast backward).

qiskit-machine-learning's gradients treat the 18-qubit SWAP-test circuit as a black box: parameter
shift needs 2 runs per parameter *occurrence*, and every weight occurs in U and in U^dagger (2,700
runs of 18 qubits per image at n = 8). The fidelities have a closed form in terms of n-qubit states,

    c_t = <eta_0 | phi_t>,  phi = U psi,  eta = V chi  (V = U when the decoder is tied),
    F = sum_t |c_t|^2,   joint = |c_0|^2,   kept = ||phi_0||^2,

so the gradient of any weighted sum ``L = sum_b g_F F + g_joint joint + g_kept kept`` needs only
n-qubit state vectors:

- weights: for a rotation exp(-i theta P / 2), d(U psi)/d theta_k = U(theta + pi e_k) psi / 2 (the
  parameter-shift rule for states), so one n-qubit run per weight and per image for psi and chi;
- inputs: dL/dpsi = 2 Re(U^T a) with a the derivative of L in phi (conj(c_t) conj(eta_0), and
  conj(phi_0) for kept), dL/dchi = 2 Re(V^T b) likewise: one run of U^dagger (V^dagger) each.

All runs of a batch go to Aer as one circuit with many parameter bindings. The tests pin these
gradients to autograd through the exact engine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import ParameterVector
from qiskit_aer import AerSimulator

from ..circuits.ansatz import BLOCK_PARAMETERS, encoder
from ..circuits.embedding import amplitude_embedding, num_embedding_parameters
from .exact import trash_latent_order

__all__ = ["AerStatevectorGradient"]


class AerStatevectorGradient:
    """Exact gradients of the QMAE fidelities w.r.t. the weights and the normalized input states, from Aer.

    Args:
        num_qubits: data qubits ``n``.
        pairs: encoder qubit pairs (repeated for more layers).
        trash_qubits: the trash qubits.
        decoder: ``"tied"`` or ``"untied"`` (then ``eta = V(phi) chi`` with the decoder's weights).
    """

    def __init__(
        self, num_qubits: int, pairs: Sequence[tuple[int, int]], trash_qubits: Sequence[int], *, decoder: str = "tied"
    ) -> None:
        n = num_qubits
        self.n, self.trash, self.untied = n, tuple(trash_qubits), decoder == "untied"
        self.sim = AerSimulator(method="statevector")
        weights = ParameterVector("θ", BLOCK_PARAMETERS * len(pairs))
        angles = ParameterVector("x", num_embedding_parameters(n))
        forward = QuantumCircuit(n)
        forward.compose(amplitude_embedding(n, parameters=angles), inplace=True)
        forward.compose(encoder(n, pairs=pairs, parameters=weights), inplace=True)
        forward.save_statevector()
        self.forward = transpile(forward, self.sim, optimization_level=0)
        self.weights, self.angles = list(weights), list(angles)
        adjoint = QuantumCircuit(n)
        adjoint.compose(encoder(n, pairs=pairs, parameters=weights).inverse(), inplace=True)
        self.adjoint_body = adjoint
        self.order = np.asarray(trash_latent_order(n, self.trash))
        self.latent_dim = 2 ** (n - len(self.trash))

    def _states(self, theta: np.ndarray, angle_rows: np.ndarray) -> np.ndarray:
        """U(theta) and U(theta + pi e_k), k = 1..K, on each embedded input: ``(inputs, 1 + K, 2**n)``."""
        k = len(theta)
        thetas = np.tile(theta, (k + 1, 1))
        thetas[1:] += np.pi * np.eye(k)
        all_angles = np.repeat(angle_rows, k + 1, axis=0)  # input-major, shift-minor
        all_thetas = np.tile(thetas, (len(angle_rows), 1))
        binds = {p: all_angles[:, j].tolist() for j, p in enumerate(self.angles)}
        binds.update({p: all_thetas[:, j].tolist() for j, p in enumerate(self.weights)})
        result = self.sim.run(self.forward, parameter_binds=[binds]).result()
        states = np.array([np.asarray(result.get_statevector(i)) for i in range(len(all_angles))])
        return states.reshape(len(angle_rows), k + 1, 2**self.n)

    def _adjoint(self, theta: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """U(theta)^dagger applied to each (unnormalized) complex vector."""
        out = np.zeros_like(vectors)
        bound = self.adjoint_body.assign_parameters(dict(zip(self.weights, theta)))
        circuits = []
        norms = np.linalg.norm(vectors, axis=1)
        for v, norm in zip(vectors, norms):
            qc = QuantumCircuit(self.n)
            qc.initialize(v / norm if norm > 0 else np.eye(2**self.n)[0], range(self.n))
            qc.compose(bound, inplace=True)
            qc.save_statevector()
            circuits.append(qc)
        result = self.sim.run(transpile(circuits, self.sim, optimization_level=0)).result()
        for i, norm in enumerate(norms):
            out[i] = np.asarray(result.get_statevector(i)) * norm
        return out

    def _split(self, states: np.ndarray) -> np.ndarray:
        """``(M, 1 + K, 2**n)`` -> ``(M, 1 + K, T, latent)`` in (trash value, latent value) order."""
        return states[..., self.order].reshape(*states.shape[:2], 2 ** len(self.trash), self.latent_dim)

    def backward(
        self,
        theta: np.ndarray,
        phi: np.ndarray | None,
        psi_angles: np.ndarray,
        chi_angles: np.ndarray,
        grad: np.ndarray,
        *,
        input_grads: bool,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Gradients of ``L = sum_b grad[b] . (F, joint, kept)[b]``.

        Args:
            theta: encoder weights ``(K,)``; phi: the untied decoder's ``(K,)`` (``None`` when tied).
            psi_angles, chi_angles: ``(B, 2**n - 1)`` embedding angles of the masked and original images.
            grad: ``(B, 3)`` weights of F, joint and kept in ``L``.
            input_grads: also return the gradients w.r.t. the normalized input states.

        Returns:
            ``(dL/dtheta (K,), dL/dphi (K,) or None, dL/dpsi (B, 2**n) or None, dL/dchi (B, 2**n) or None)``.
        """
        batch = len(psi_angles)
        if phi is None:  # one Aer run for both: eta's shifts are theta's too
            both = self._split(self._states(theta, np.concatenate([psi_angles, chi_angles])))
            ps, es = both[:batch], both[batch:, :, 0]
        else:
            ps, es = self._split(self._states(theta, psi_angles)), self._split(self._states(phi, chi_angles))[:, :, 0]
        phi0, eta0 = ps[:, 0], es[:, 0]  # (B, T, L), (B, L)
        c = np.einsum("ba,bta->bt", eta0.conj(), phi0)  # (B, T)
        w = np.repeat(grad[:, :1], c.shape[1], axis=1)  # dL/d|c_t|^2
        w[:, 0] += grad[:, 1]
        g_kept = grad[:, 2]
        dphi_states, deta_states = ps[:, 1:] / 2, es[:, 1:] / 2  # d/dweight_k, (B, K, T, L) and (B, K, L)
        # through phi: |c_t|^2 terms and kept; through eta: |c_t|^2 terms
        dc_phi = np.einsum("ba,bkta->bkt", eta0.conj(), dphi_states)
        through_phi = 2 * np.real(np.einsum("bt,bt,bkt->k", w, c.conj(), dc_phi))
        through_phi += 2 * np.real(np.einsum("b,ba,bka->k", g_kept, phi0[:, 0].conj(), dphi_states[:, :, 0]))
        dc_eta = np.einsum("bka,bta->bkt", deta_states.conj(), phi0)
        through_eta = 2 * np.real(np.einsum("bt,bt,bkt->k", w, c.conj(), dc_eta))
        dtheta, dphi = (through_phi + through_eta, None) if phi is None else (through_phi, through_eta)
        if not input_grads:
            return dtheta, dphi, None, None
        # dL/dpsi = 2 Re(U^T a), a = dL/dphi (holomorphic): conj(c_t) conj(eta_0) weighted, plus conj(phi_0) for kept
        a = (w * c.conj())[:, :, None] * eta0.conj()[:, None, :]
        a[:, 0] += g_kept[:, None] * phi0[:, 0].conj()
        # dL/dchi = 2 Re(V^T b), b = dL/deta (holomorphic), trash = 0 part only: sum_t w_t c_t conj(phi_t)
        b = np.zeros_like(a)
        b[:, 0] = np.einsum("bt,bt,bta->ba", w, c, phi0.conj())
        unordered = np.zeros((2 * batch, 2**self.n), dtype=complex)
        unordered[:, self.order] = np.concatenate([a.reshape(batch, -1), b.reshape(batch, -1)])
        # U^T v = conj(U^dagger conj(v))
        if phi is None:
            back = np.conj(self._adjoint(theta, np.conj(unordered)))
        else:
            back = np.concatenate(
                [
                    np.conj(self._adjoint(theta, np.conj(unordered[:batch]))),
                    np.conj(self._adjoint(phi, np.conj(unordered[batch:]))),
                ]
            )
        grads = 2 * np.real(back)
        return dtheta, dphi, grads[:batch], grads[batch:]
