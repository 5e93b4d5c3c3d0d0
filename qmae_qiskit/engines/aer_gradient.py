"""Exact gradients of the QMAE fidelities from two Aer runs per step, whatever the batch (the adjoint method).

qiskit-machine-learning's gradients treat the circuit as a black box: parameter shift needs 2 runs
per parameter *occurrence* and per image, and every weight occurs in U and in U^dagger. The
fidelities have a closed form in n-qubit quantities,

    c_t = <eta_0 | phi_t>,  phi = U psi,  eta = V chi  (V = U when the decoder is tied),
    F = sum_t |c_t|^2,   joint = |c_0|^2,   kept = ||phi_0||^2,

so a weighted sum ``L = sum_b g_F F + g_joint joint + g_kept kept`` over a batch depends on U only
through ``tr(dU M)`` with one matrix ``M = sum_b psi_b a_b^T (+ chi_b b_b^T)`` (``a_b``, ``b_b`` the
derivatives of L in ``phi_b``, ``eta_b``). With ``X_k`` the encoder's unitary up to and including
the k-th rotation ``exp(-i theta_k P_k / 2)``, ``dU/dtheta_k = U X_k^dagger (-i P_k / 2) X_k`` and

    dL/dtheta_k = 2 Re tr(dU_k M) = Im tr(P_k Y_k),   Y_k = X_k N X_k^dagger,   N = M U.

``Y_k`` is a sweep through the encoder's gates, each applied as ``G Y G^dagger``: on the vector of
``Y`` (``2n`` qubits, the row index on the first ``n``) that is ``G`` on the first ``n`` qubits and
``conj(G)`` on the others. So:

1. ``AerSimulator(method="unitary")`` gives U (one run of the n-qubit encoder);
2. ``AerSimulator(method="statevector")`` runs the doubled encoder on ``2n`` qubits from the state
   ``vec(N) / ||N||`` and saves, after each weight's rotation, the ``2**n`` amplitudes
   ``Y_k[m, pi_k(m)]`` that ``tr(P_k Y_k)`` reads (``save_amplitudes``; ``pi_k`` flips P_k's qubit
   for X and Y, and is the identity for Z).

The inputs' gradients (the mask token's) are ``dL/dpsi = 2 Re(U^T a)``, ``dL/dchi = 2 Re(V^T b)``.
Only ``M`` and those products see the batch (``(B, 2**n) x (2**n, 2**n)``): at n = 8 a step's
gradient costs ~0.5 s at any batch size. The tests pin these gradients to autograd through the
exact engine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector
from qiskit.circuit.library import UnitaryGate
from qiskit_aer import AerSimulator
from qiskit_aer.library import SetStatevector

from ..circuits.ansatz import BLOCK_PARAMETERS, encoder
from .exact import trash_latent_order

__all__ = ["AerAdjointGradient"]

_CONJUGATE_SIGN = {"rx": -1.0, "ry": 1.0, "rz": -1.0}  # conj(R_P(theta)) = R_P(sign * theta)


class AerAdjointGradient:
    """Exact gradients of the QMAE fidelities w.r.t. the weights and the normalized input states, from Aer.

    Args:
        num_qubits: data qubits ``n``.
        pairs: encoder qubit pairs (repeated for more layers).
        trash_qubits: the trash qubits.

    Raises:
        ValueError: the encoder has a parameterized gate other than RX, RY, RZ, or a weight that
            occurs more than once (the derivative formula needs each weight in one rotation).
    """

    def __init__(self, num_qubits: int, pairs: Sequence[tuple[int, int]], trash_qubits: Sequence[int]) -> None:
        n = num_qubits
        self.n, self.trash, self.dim = n, tuple(trash_qubits), 2**n
        weights = ParameterVector("θ", BLOCK_PARAMETERS * len(pairs))
        body = encoder(n, pairs=pairs, parameters=weights)
        self.weights = list(weights)
        self.unitary_circuit = body.copy()
        self.unitary_circuit.save_unitary()
        self.sweep, self.coefficients = self._sweep(body, weights)
        self.unitary_sim = AerSimulator(method="unitary")
        self.sweep_sim = AerSimulator(method="statevector")
        self.order = np.asarray(trash_latent_order(n, self.trash))
        self.latent_dim = 2 ** (n - len(self.trash))

    def _sweep(self, body: QuantumCircuit, weights: ParameterVector) -> tuple[QuantumCircuit, np.ndarray]:
        """The doubled encoder (``G`` on rows, ``conj(G)`` on columns) with the amplitudes each weight needs."""
        n, dim = self.n, self.dim
        index = {p: k for k, p in enumerate(weights)}
        rows = np.arange(dim)
        sweep = QuantumCircuit(2 * n)
        coefficients = np.zeros((len(weights), dim), dtype=np.complex128)
        seen: set[int] = set()
        for inst in body.data:
            op, qubits = inst.operation, [body.find_bit(q).index for q in inst.qubits]
            if not op.params:
                sweep.append(op, qubits)
                sweep.append(UnitaryGate(op.to_matrix().conj()) if op.name != "cx" else op, [q + n for q in qubits])
                continue
            (param,) = op.params
            if op.name not in _CONJUGATE_SIGN or not isinstance(param, Parameter) or param not in index:
                raise ValueError(f"the Aer adjoint gradient needs rotations by one weight each, got {op.name}({param})")
            k, (q,) = index[param], qubits
            if k in seen:
                raise ValueError(f"weight {param} occurs twice; the Aer adjoint gradient needs each weight once")
            seen.add(k)
            getattr(sweep, op.name)(param, q)
            getattr(sweep, op.name)(_CONJUGATE_SIGN[op.name] * param, q + n)
            bit = (rows >> q) & 1
            partner = rows if op.name == "rz" else rows ^ (1 << q)
            # P[pi(m), m]: Z = diag(1, -1); X flips; Y|0> = i|1>, Y|1> = -i|0>
            coefficients[k] = {"rz": 1 - 2 * bit, "rx": np.ones(dim), "ry": np.where(bit == 0, 1j, -1j)}[op.name]
            sweep.save_amplitudes((rows + dim * partner).tolist(), label=f"w{k}")  # Y[m, pi(m)]
        return sweep, coefficients

    def _binds(self, theta: np.ndarray) -> list[dict]:
        return [{p: [float(v)] for p, v in zip(self.weights, theta)}]

    def unitary(self, theta: np.ndarray) -> np.ndarray:
        """U(theta) ``(2**n, 2**n)`` from Aer's unitary method."""
        result = self.unitary_sim.run(self.unitary_circuit, parameter_binds=self._binds(theta)).result()
        return np.asarray(result.data(0)["unitary"])

    def weight_gradient(self, theta: np.ndarray, unitary: np.ndarray, m: np.ndarray) -> np.ndarray:
        """``dL/dtheta_k = Im tr(P_k X_k N X_k^dagger)``, ``N = M U``, for ``dL = 2 Re tr(dU M)``: one Aer run."""
        nmat = m @ unitary
        norm = float(np.linalg.norm(nmat))
        if norm == 0.0:
            return np.zeros(len(self.weights))
        circuit = QuantumCircuit(2 * self.n)
        circuit.append(SetStatevector(nmat.reshape(-1, order="F") / norm), circuit.qubits)  # [m + D l] = N[m, l]
        circuit.compose(self.sweep, inplace=True)
        data = self.sweep_sim.run(circuit, parameter_binds=self._binds(theta)).result().data(0)
        amplitudes = np.stack([np.asarray(data[f"w{k}"]) for k in range(len(self.weights))])
        return norm * np.imag((self.coefficients * amplitudes).sum(1))

    def backward(
        self,
        theta: np.ndarray,
        phi: np.ndarray | None,
        psi: np.ndarray,
        chi: np.ndarray,
        grad: np.ndarray,
        *,
        input_grads: bool,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Gradients of ``L = sum_b grad[b] . (F, joint, kept)[b]``.

        Args:
            theta: encoder weights ``(K,)``; phi: the untied decoder's ``(K,)`` (``None`` when tied).
            psi, chi: ``(B, 2**n)`` normalized states of the masked and original images.
            grad: ``(B, 3)`` weights of F, joint and kept in ``L``.
            input_grads: also return the gradients w.r.t. ``psi`` and ``chi``.

        Returns:
            ``(dL/dtheta (K,), dL/dphi (K,) or None, dL/dpsi (B, 2**n) or None, dL/dchi (B, 2**n) or None)``.
        """
        batch, dim = psi.shape
        u = self.unitary(theta)
        v = u if phi is None else self.unitary(phi)
        phis, etas = psi @ u.T, chi @ v.T  # (B, D): U psi_b, V chi_b
        ps = phis[:, self.order].reshape(batch, -1, self.latent_dim)  # (B, T, L) by trash value
        eta0 = etas[:, self.order].reshape(batch, -1, self.latent_dim)[:, 0]  # (B, L)
        c = np.einsum("ba,bta->bt", eta0.conj(), ps)  # (B, T)
        w = np.repeat(grad[:, :1], c.shape[1], axis=1)  # dL/d|c_t|^2
        w[:, 0] += grad[:, 1]
        # a = dL/dphi, b = dL/deta (holomorphic), in (trash, latent) order
        a = (w * c.conj())[:, :, None] * eta0.conj()[:, None, :]
        a[:, 0] += grad[:, 2, None] * ps[:, 0].conj()
        b = np.zeros_like(a)
        b[:, 0] = np.einsum("bt,bt,bta->ba", w, c, ps.conj())
        a_vec, b_vec = np.zeros((batch, dim), complex), np.zeros((batch, dim), complex)
        a_vec[:, self.order], b_vec[:, self.order] = a.reshape(batch, -1), b.reshape(batch, -1)
        m_u, m_v = psi.T @ a_vec, chi.T @ b_vec  # tr(dU M) = sum_b a_b^T dU psi_b
        if phi is None:
            dtheta, dphi = self.weight_gradient(theta, u, m_u + m_v), None
        else:
            assert phi is not None
            dtheta, dphi = self.weight_gradient(theta, u, m_u), self.weight_gradient(phi, v, m_v)
        if not input_grads:
            return dtheta, dphi, None, None
        return dtheta, dphi, 2 * np.real(a_vec @ u), 2 * np.real(b_vec @ v)
