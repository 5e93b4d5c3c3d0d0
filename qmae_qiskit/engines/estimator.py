"""The estimator engine: the design card's path, ``EstimatorQNN`` + ``TorchConnector`` on Aer.

The QNN wraps the ``"paper"`` fidelity circuit (unitary up to the end, so a statevector estimator
is exact; a mid-circuit ``reset`` would make it stochastic) with the observable Z on the SWAP-test
ancilla, whose expectation is F. Its inputs are the embedding angles of the masked and of the
original image, its weights the encoder's theta; ``input_gradients=True`` carries the gradient back
through the angles to the mask token.

Gradients: ``gradient="aer_statevector"`` (default) computes exact gradients from n-qubit Aer state
vectors (:mod:`qmae_qiskit.engines.aer_gradient`; ~0.4 s per image at n = 8), exploiting that U and
U^dagger share their weights; ``gradient="param_shift"`` uses qiskit-machine-learning's own
parameter-shift gradients through ``TorchConnector`` (~2,700 runs of the 18-qubit circuit per image).
The forward value always comes from ``EstimatorQNN``.

``EstimatorQNN`` defaults to ``default_precision=0.015625``, which makes Aer *sample*; here the
default is ``precision=0.0`` (exact expectation values). Pass a positive precision (or shots) to
train with shot noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.neural_networks import EstimatorQNN

from ..angles import embedding_angles
from ..circuits.fidelity import fidelity_circuit
from .aer_gradient import AerStatevectorGradient

__all__ = ["EstimatorEngine", "GRADIENTS"]

GRADIENTS = ("aer_statevector", "param_shift")


class EstimatorEngine:
    """QMAE fidelity through ``EstimatorQNN`` + ``TorchConnector`` on ``qiskit_aer`` EstimatorV2.

    Args:
        num_qubits: data qubits ``n``.
        pairs: encoder qubit pairs.
        trash_qubits: the trash qubits.
        precision: target precision of the estimates; 0 gives exact statevector values.
        seed: seed of Aer's sampling when ``precision > 0``.
        gradient: ``"aer_statevector"`` (exact, fast) or ``"param_shift"`` (qiskit-machine-learning's).
    """

    name = "estimator"

    def __init__(
        self,
        num_qubits: int,
        pairs: Sequence[tuple[int, int]],
        trash_qubits: Sequence[int],
        *,
        precision: float = 0.0,
        seed: int | None = None,
        gradient: str = "aer_statevector",
    ) -> None:
        if precision < 0:
            raise ValueError(f"precision must be >= 0, got {precision}")
        if gradient not in GRADIENTS:
            raise ValueError(f"unknown gradient {gradient!r}; choose one of {', '.join(GRADIENTS)}")
        self.gradient = gradient
        self.num_qubits = num_qubits
        self.spec = fidelity_circuit(num_qubits, variant="paper", trash_qubits=trash_qubits, pairs=pairs)
        circuit = self.spec.circuit
        label = ["I"] * circuit.num_qubits
        label[circuit.num_qubits - 1 - self.spec.ancilla] = "Z"  # Pauli labels are big-endian
        options = {"default_precision": precision}
        if seed is not None:
            options["run_options"] = {"seed": seed}
        self.qnn = EstimatorQNN(
            circuit=circuit,
            estimator=EstimatorV2(options=options),
            observables=SparsePauliOp("".join(label)),
            input_params=self.spec.input_parameters,
            weight_params=list(self.spec.weights),
            input_gradients=True,
            default_precision=precision,
        )
        self.connector = TorchConnector(self.qnn)
        self._aer = AerStatevectorGradient(num_qubits, pairs, trash_qubits) if gradient == "aer_statevector" else None

    def _tie(self, theta: torch.nn.Parameter) -> None:
        # TorchConnector owns a weight Parameter; make it *the model's* theta so that one
        # optimizer, one state_dict and both engines see the same weights.
        if self.connector.weight is not theta:
            self.connector.register_parameter("weight", theta)
            self.connector._weights = theta  # the name TorchConnector.forward reads

    def fidelity(self, theta: torch.Tensor, masked: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        """F for each image (same contract as :meth:`ExactEngine.fidelity`)."""
        lit = masked.abs().sum(1) > 0
        if self._aer is not None:
            psi = masked.double() / masked.double().norm(dim=1, keepdim=True).clamp_min(1e-30)
            chi = original.double() / original.double().norm(dim=1, keepdim=True).clamp_min(1e-30)
            values = _QNNFidelity.apply(theta, psi, chi, self).to(masked.dtype)  # same dtype as the exact engine
            return values * lit.to(values.dtype)
        if not isinstance(theta, torch.nn.Parameter):
            theta = torch.nn.Parameter(theta.detach().clone(), requires_grad=False)
        self._tie(theta)
        inputs = torch.cat([embedding_angles(masked.float()), embedding_angles(original.float())], dim=1)
        values = self.connector(inputs).reshape(-1)
        # a masked image with no lit pixel has no state (the circuit would embed |0..0>)
        return values * lit.to(values.dtype)


class _QNNFidelity(torch.autograd.Function):
    """Forward: ``EstimatorQNN``. Backward: exact gradients from Aer state vectors."""

    @staticmethod
    def forward(
        ctx, theta: torch.Tensor, psi: torch.Tensor, chi: torch.Tensor, engine: EstimatorEngine
    ) -> torch.Tensor:
        psi_angles = embedding_angles(psi.detach()).numpy()
        chi_angles = embedding_angles(chi.detach()).numpy()
        weights = theta.detach().double().numpy()
        values = engine.qnn.forward(np.concatenate([psi_angles, chi_angles], axis=1), weights).reshape(-1)
        ctx.engine, ctx.arrays = engine, (weights, psi_angles, chi_angles)
        ctx.needs = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        return torch.as_tensor(values, dtype=torch.float64)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        weights, psi_angles, chi_angles = ctx.arrays
        _, dtheta, dpsi, dchi = ctx.engine._aer.value_and_grad(weights, psi_angles, chi_angles, input_grads=ctx.needs)
        g = grad_output.detach().double().numpy()
        grad_theta = torch.as_tensor(g @ dtheta)
        grad_psi = torch.as_tensor(g[:, None] * dpsi) if dpsi is not None and ctx.needs_input_grad[1] else None
        grad_chi = torch.as_tensor(g[:, None] * dchi) if dchi is not None and ctx.needs_input_grad[2] else None
        return grad_theta, grad_psi, grad_chi, None
