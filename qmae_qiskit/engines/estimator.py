"""The estimator engine: the design card's path, ``EstimatorQNN`` + ``TorchConnector`` on Aer.

The QNN wraps the ``"paper"`` fidelity circuit (unitary up to the end, so a statevector estimator
is exact; a mid-circuit ``reset`` would make it stochastic) with three observables, which give every
field of :class:`~qmae_qiskit.engines.Branches`:

    Z_anc                       -> F, the reset fidelity (the SWAP test)
    Z_anc (x) |0><0|_fresh      -> joint: the trash (now on the fresh qubits) reads 0 and the test passes
    |0><0|_fresh                -> kept:  P(trash = 0)

Its inputs are the embedding angles of the masked and of the original image, its weights the
encoder's theta (then the untied decoder's phi); ``input_gradients=True`` carries the gradient back
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
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.neural_networks import EstimatorQNN

from ..angles import embedding_angles
from ..circuits.fidelity import fidelity_circuit
from .aer_gradient import AerStatevectorGradient
from .branches import Branches

if TYPE_CHECKING:
    from .exact import ExactEngine

__all__ = ["EstimatorEngine", "GRADIENTS"]

GRADIENTS = ("aer_statevector", "param_shift")


def _observables(num_qubits: int, ancilla: int, fresh: Sequence[int]) -> list[SparsePauliOp]:
    """``Z_anc``, ``Z_anc (x) P0``, ``P0`` with ``P0 = prod_k (I + Z_k) / 2`` on the fresh qubits."""
    subsets = [[q for j, q in enumerate(fresh) if mask >> j & 1] for mask in range(2 ** len(fresh))]
    scale = 1.0 / 2 ** len(fresh)
    projector = [("Z" * len(s), s, scale) for s in subsets]
    with_anc = [("Z" * (len(s) + 1), s + [ancilla], scale) for s in subsets]
    return [
        SparsePauliOp.from_sparse_list([("Z", [ancilla], 1.0)], num_qubits),
        SparsePauliOp.from_sparse_list(with_anc, num_qubits).simplify(),
        SparsePauliOp.from_sparse_list(projector, num_qubits).simplify(),
    ]


def _required(index: int | None) -> int:
    if index is None:
        raise ValueError("the paper circuit has a SWAP-test ancilla")
    return index


class EstimatorEngine:
    """QMAE fidelities through ``EstimatorQNN`` + ``TorchConnector`` on ``qiskit_aer`` EstimatorV2.

    Args:
        num_qubits: data qubits ``n``.
        pairs: encoder qubit pairs (repeated for more layers).
        trash_qubits: the trash qubits.
        decoder: ``"tied"`` or ``"untied"`` (the decoder's weights follow the encoder's).
        precision: target precision of the estimates; 0 gives exact statevector values.
        seed: seed of Aer's sampling when ``precision > 0``.
        gradient: ``"aer_statevector"`` (exact, fast) or ``"param_shift"`` (qiskit-machine-learning's).

    Raises:
        ValueError: a negative precision or an unknown gradient.
    """

    name = "estimator"

    def __init__(
        self,
        num_qubits: int,
        pairs: Sequence[tuple[int, int]],
        trash_qubits: Sequence[int],
        *,
        decoder: str = "tied",
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
        self.pairs, self.trash_qubits = list(pairs), tuple(trash_qubits)
        self._exact: ExactEngine | None = None  # reconstructions
        self.spec = fidelity_circuit(
            num_qubits, variant="paper", trash_qubits=trash_qubits, pairs=pairs, decoder=decoder
        )
        circuit = self.spec.circuit
        options: dict[str, Any] = {"default_precision": precision}
        if seed is not None:
            options["run_options"] = {"seed": seed}
        self.qnn = EstimatorQNN(
            circuit=circuit,
            estimator=EstimatorV2(options=options),
            observables=_observables(circuit.num_qubits, _required(self.spec.ancilla), self.spec.fresh),
            input_params=self.spec.input_parameters,
            weight_params=self.spec.weight_parameters,
            input_gradients=True,
            default_precision=precision,
        )
        # TorchConnector owns its weights; _ConnectorCall copies ours into them and routes the
        # gradients back, so the model keeps one set of Parameters for every engine.
        self.connector = TorchConnector(self.qnn) if gradient == "param_shift" else None
        self._aer = (
            AerStatevectorGradient(num_qubits, pairs, trash_qubits, decoder=decoder) if self.connector is None else None
        )

    def branches(
        self, theta: torch.Tensor, masked: torch.Tensor, original: torch.Tensor, *, decoder: torch.Tensor | None = None
    ) -> Branches:
        """The same contract as :meth:`ExactEngine.branches <qmae_qiskit.engines.exact.ExactEngine.branches>`."""
        lit = (masked.abs().sum(1) > 0).to(torch.float64)  # an empty masked image has no state: F = 0
        weights = theta.reshape(-1) if decoder is None else torch.cat([theta.reshape(-1), decoder.reshape(-1)])
        if self._aer is not None:
            psi = masked.double() / masked.double().norm(dim=1, keepdim=True).clamp_min(1e-30)
            chi = original.double() / original.double().norm(dim=1, keepdim=True).clamp_min(1e-30)
            values = _AerFidelity.apply(weights, psi, chi, self, decoder is not None)
        else:
            inputs = torch.cat([embedding_angles(masked.double()), embedding_angles(original.double())], dim=1)
            values = _ConnectorCall.apply(inputs, weights.double(), self.connector)
        values = values * lit[:, None]
        return Branches(*values.to(masked.dtype).unbind(1))

    def fidelity(self, theta: torch.Tensor, masked: torch.Tensor, original: torch.Tensor, **kwargs) -> torch.Tensor:
        """The reset fidelity of each image (same contract as the exact engine's ``fidelity``)."""
        return self.branches(theta, masked, original, **kwargs).fidelity

    def reconstruct(
        self,
        theta: torch.Tensor,
        masked: torch.Tensor,
        *,
        postselect: bool = False,
        decoder: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pixel probabilities of the decoder's output, read off exactly (the estimator's
        observables give fidelities, not the output state): the exact engine's
        :meth:`~qmae_qiskit.engines.exact.ExactEngine.reconstruct` on the same architecture."""
        if self._exact is None:
            from .exact import ExactEngine

            self._exact = ExactEngine(self.num_qubits, self.pairs, self.trash_qubits)
        return self._exact.reconstruct(theta, masked, postselect=postselect, decoder=decoder)


class _ConnectorCall(torch.autograd.Function):
    """``TorchConnector(inputs)`` with *given* weights, through its public API only.

    ``TorchConnector`` keeps its own ``weight`` Parameter; the model's weights are copied into it
    for the call, the connector's graph (its parameter-shift backward) is kept, and the backward
    hands the gradients of its inputs and of its weight back to ours.
    """

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, weights: torch.Tensor, connector: TorchConnector) -> torch.Tensor:
        with torch.no_grad():
            connector.weight.copy_(weights.to(connector.weight.dtype))
        leaf = inputs.detach().to(torch.float64).requires_grad_(inputs.requires_grad)
        with torch.enable_grad():
            out = connector(leaf)
        ctx.graph = (leaf, out, connector.weight)
        return out.detach().to(torch.float64)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        leaf, out, weight = ctx.graph
        targets = [weight] + ([leaf] if leaf.requires_grad else [])
        grads = torch.autograd.grad(out, targets, grad.to(out.dtype))
        dinputs = grads[1].to(torch.float64) if leaf.requires_grad else None
        return dinputs, grads[0].to(torch.float64), None


class _AerFidelity(torch.autograd.Function):
    """Forward: ``EstimatorQNN`` (the three observables). Backward: exact gradients from Aer state vectors."""

    @staticmethod
    def forward(
        ctx, weights: torch.Tensor, psi: torch.Tensor, chi: torch.Tensor, engine: EstimatorEngine, untied: bool
    ):
        psi_angles = embedding_angles(psi.detach()).numpy()
        chi_angles = embedding_angles(chi.detach()).numpy()
        w = weights.detach().double().numpy()
        values = engine.qnn.forward(np.concatenate([psi_angles, chi_angles], axis=1), w)
        ctx.engine, ctx.arrays, ctx.untied = engine, (w, psi_angles, chi_angles), untied
        return torch.as_tensor(np.asarray(values).reshape(len(psi_angles), 3), dtype=torch.float64)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        w, psi_angles, chi_angles = ctx.arrays
        half = len(w) // 2 if ctx.untied else len(w)
        theta, phi = w[:half], (w[half:] if ctx.untied else None)
        needs_inputs = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        g = grad.detach().double().numpy()
        dtheta, dphi, dpsi, dchi = ctx.engine._aer.backward(
            theta, phi, psi_angles, chi_angles, g, input_grads=needs_inputs
        )
        dweights = torch.as_tensor(np.concatenate([dtheta, dphi]) if ctx.untied else dtheta)
        grad_psi = torch.as_tensor(dpsi) if dpsi is not None and ctx.needs_input_grad[1] else None
        grad_chi = torch.as_tensor(dchi) if dchi is not None and ctx.needs_input_grad[2] else None
        return dweights, grad_psi, grad_chi, None, None
