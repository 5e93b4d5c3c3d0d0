"""Exact gradients of the QMAE fidelity from Aer state vectors (the estimator engine's fast backward).

qiskit-machine-learning's gradients treat the 18-qubit SWAP-test circuit as a black box: parameter
shift needs 2 runs per parameter *occurrence*, and every weight occurs in U and in U^dagger (2,700
runs of 18 qubits per image at n = 8). The fidelity has a closed form in terms of U alone,

    F = sum_t |c_t|^2,   c_t = <eta_0 | phi_t>,   phi = U psi,   eta = U chi,

so the gradient needs only n-qubit state vectors:

- weights: for a rotation exp(-i theta P / 2), d(U psi)/d theta_k = U(theta + pi e_k) psi / 2 (the
  parameter-shift rule for states), so one n-qubit run per weight and per image for psi and chi;
- inputs: dF/dpsi = 2 Re(U^T w) with w_(t,a) = conj(c_t) conj(eta_0[a]), one run of U^dagger.

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
    """F and its exact gradients w.r.t. theta and the normalized input states, from Aer."""

    def __init__(self, num_qubits: int, pairs: Sequence[tuple[int, int]], trash_qubits: Sequence[int]) -> None:
        n = num_qubits
        self.n, self.trash = n, tuple(trash_qubits)
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
        """U^dagger applied to each (unnormalized) complex vector."""
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

    def value_and_grad(
        self, theta: np.ndarray, psi_angles: np.ndarray, chi_angles: np.ndarray, *, input_grads: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """F ``(B,)``, dF/dtheta ``(B, K)``, and dF/dpsi, dF/dchi ``(B, 2**n)`` (real inputs)."""
        batch = len(psi_angles)
        states = self._states(theta, np.concatenate([psi_angles, chi_angles]))  # (2B, 1+K, 2^n)
        ordered = states[..., self.order].reshape(2 * batch, -1, 2 ** len(self.trash), self.latent_dim)
        phi, eta0 = ordered[:batch], ordered[batch:, :, 0]  # (B, 1+K, T, L), (B, 1+K, L)
        c = np.einsum("ba,bta->bt", eta0[:, 0].conj(), phi[:, 0])  # (B, T)
        fid = np.sum(np.abs(c) ** 2, axis=1)
        dphi, deta0 = phi[:, 1:] / 2, eta0[:, 1:] / 2  # (B, K, T, L), (B, K, L)
        dc = np.einsum("ba,bkta->bkt", eta0[:, 0].conj(), dphi) + np.einsum("bka,bta->bkt", deta0.conj(), phi[:, 0])
        dtheta = 2 * np.real(np.einsum("bt,bkt->bk", c.conj(), dc))
        if not input_grads:
            return fid, dtheta, None, None
        # dF/dpsi = 2 Re(U^T w_psi), w_psi[(t,a)] = conj(c_t) conj(eta0[a]); U^T w = conj(U^dagger conj(w))
        w_psi = (c.conj()[:, :, None] * eta0[:, 0].conj()[:, None, :]).reshape(batch, -1)
        # dF/dchi: c_t depends on eta0 = (U chi)_(0,a) through conj: dF/dchi = 2 Re(U^T w_chi),
        # w_chi[(0,a)] = c_t conj(phi_t[a]) summed over t
        w_chi = np.zeros_like(w_psi)
        w_chi[:, : self.latent_dim] = np.einsum("bt,bta->ba", c, phi[:, 0].conj())
        unordered = np.zeros((2 * batch, 2**self.n), dtype=complex)
        unordered[:, self.order] = np.concatenate([w_psi, w_chi])
        back = np.conj(self._adjoint(theta, np.conj(unordered)))  # U^T w
        grads = 2 * np.real(back)
        return fid, dtheta, grads[:batch], grads[batch:]
