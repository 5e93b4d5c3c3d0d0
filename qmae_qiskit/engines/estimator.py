"""The estimator engine: the design card's path, ``EstimatorQNN`` + ``TorchConnector`` on Aer.

The QNN wraps :func:`~qmae_qiskit.circuits.estimator_circuit` (``n + t + 1`` = 10 qubits at n = 8:
the compute-uncompute circuit with the trash SWAPped onto fresh qubits and a ``zero`` flag raised
when the data return to ``|0...0>``; unitary, so a statevector estimator is exact) with three
observables, which give every field of :class:`~qmae_qiskit.engines.Branches`:

    (I - Z_zero) / 2                -> F, the reset fidelity
    (I - Z_zero) / 2 (x) P0_fresh    -> joint: the trash (now on the fresh qubits) reads 0 and the data return
    P0_fresh = prod (I + Z_f) / 2     -> kept:  P(trash = 0)

Its inputs are the embedding angles of the masked and of the original image, its weights the
encoder's theta (then the untied decoder's phi). qiskit-machine-learning sends one PUB per
observable; :class:`SharedBindingsEstimator` runs them as one PUB with an observables axis, so Aer
simulates each image once, not three times.

Gradients: ``gradient="aer_adjoint"`` (default) computes exact gradients from two Aer runs per step
(:mod:`qmae_qiskit.engines.aer_gradient`: U by the unitary method, then the adjoint sweep on ``2n``
qubits; ~0.5 s at n = 8, whatever the batch), w.r.t. the weights and, through the normalized input
states, the mask token; ``gradient="param_shift"`` uses qiskit-machine-learning's own parameter-shift gradients through
``TorchConnector`` (two runs per parameter occurrence and per image). The forward value always
comes from ``EstimatorQNN``.

``EstimatorQNN`` defaults to ``default_precision=0.015625``, which makes Aer *sample*; here the
default is ``precision=0.0`` (exact expectation values). Pass a positive precision to train with
shot noise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from qiskit.primitives import BaseEstimatorV2, PrimitiveJob, PrimitiveResult, PubResult
from qiskit.primitives.containers import DataBin
from qiskit.primitives.containers.estimator_pub import EstimatorPub, EstimatorPubLike
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.neural_networks import EstimatorQNN

from ..angles import embedding_angles
from ..circuits.fidelity import estimator_circuit
from .aer_gradient import AerAdjointGradient
from .branches import Branches

if TYPE_CHECKING:
    from .exact import ExactEngine

__all__ = ["EstimatorEngine", "GRADIENTS", "SharedBindingsEstimator"]

GRADIENTS = ("aer_adjoint", "param_shift")
_RENAMED = {"aer_statevector": "aer_adjoint"}


def _observables(num_qubits: int, zero: int, fresh: Sequence[int]) -> list[SparsePauliOp]:
    """``(I - Z_zero) / 2``, that times ``P0_fresh``, and ``P0_fresh = prod_f (I + Z_f) / 2``."""
    subsets = [[q for j, q in enumerate(fresh) if mask >> j & 1] for mask in range(2 ** len(fresh))]
    scale = 1.0 / 2 ** len(fresh)
    projector = [("Z" * len(s), s, scale) for s in subsets]
    joint = [("Z" * len(s), s, scale / 2) for s in subsets] + [
        ("Z" * (len(s) + 1), s + [zero], -scale / 2) for s in subsets
    ]
    return [
        SparsePauliOp.from_sparse_list([("", [], 0.5), ("Z", [zero], -0.5)], num_qubits),
        SparsePauliOp.from_sparse_list(joint, num_qubits).simplify(),
        SparsePauliOp.from_sparse_list(projector, num_qubits).simplify(),
    ]


def _nested(item: Any, depth: int) -> Any:
    for _ in range(depth):
        item = [item]
    return item


class SharedBindingsEstimator(BaseEstimatorV2):
    """An EstimatorV2 that runs the PUBs of one call which share a circuit and its parameter values
    as one PUB with an observables axis, then hands each PUB its own result.

    ``EstimatorQNN`` sends one PUB per observable with the same circuit and bindings; a simulator
    then runs the circuit once per binding *per observable*. Through this wrapper it runs once per
    binding. Other PUBs (a gradient's shifted circuits) pass through unchanged.

    Args:
        estimator: the EstimatorV2 that runs the merged PUBs (Aer's here).
    """

    def __init__(self, estimator: BaseEstimatorV2) -> None:
        self.estimator = estimator

    def run(self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None) -> PrimitiveJob:
        coerced = [EstimatorPub.coerce(pub, precision) for pub in pubs]
        job = PrimitiveJob(self._run, coerced)
        job._submit()
        return job

    def _run(self, pubs: list[EstimatorPub]) -> PrimitiveResult:
        groups: dict[Any, list[int]] = {}
        for i, pub in enumerate(pubs):
            groups.setdefault(self._key(pub, i), []).append(i)
        merged = []
        for group in groups.values():
            first = pubs[group[0]]
            if len(group) == 1:
                merged.append(first)
                continue
            # shape (k, 1, ..., 1) against the bindings' shape: row i is PUB i's own broadcast shape
            observables = [_nested(pubs[i].observables.ravel()[0], first.parameter_values.ndim) for i in group]
            merged.append(EstimatorPub.coerce((first.circuit, observables, first.parameter_values), first.precision))
        results = self.estimator.run(merged).result()
        out: list[PubResult | None] = [None] * len(pubs)
        for group, result in zip(groups.values(), results):
            if len(group) == 1:
                out[group[0]] = result
                continue
            for row, i in enumerate(group):
                evs, stds = np.asarray(result.data.evs)[row], np.asarray(result.data.stds)[row]
                out[i] = PubResult(DataBin(evs=evs, stds=stds, shape=evs.shape), metadata=result.metadata)
        return PrimitiveResult(out, metadata={"merged_pubs": len(pubs) - len(groups)})

    @staticmethod
    def _key(pub: EstimatorPub, index: int) -> tuple:
        """PUBs with equal keys merge: a scalar observable on the same circuit object with equal
        parameter values and precision (any other PUB gets a key of its own)."""
        if pub.observables.shape != ():
            return ("alone", index)
        values = np.ascontiguousarray(pub.parameter_values.as_array(pub.circuit.parameters))
        return (id(pub.circuit), pub.precision, values.shape, values.tobytes())


class EstimatorEngine:
    """QMAE fidelities through ``EstimatorQNN`` + ``TorchConnector`` on ``qiskit_aer`` EstimatorV2.

    Args:
        num_qubits: data qubits ``n``.
        pairs: encoder qubit pairs (repeated for more layers).
        trash_qubits: the trash qubits.
        decoder: ``"tied"`` or ``"untied"`` (the decoder's weights follow the encoder's).
        precision: target precision of the estimates; 0 gives exact statevector values.
        seed: seed of Aer's sampling when ``precision > 0``.
        gradient: ``"aer_adjoint"`` (exact, two Aer runs per step) or ``"param_shift"``
            (qiskit-machine-learning's, through ``TorchConnector``).

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
        gradient: str = "aer_adjoint",
    ) -> None:
        if precision < 0:
            raise ValueError(f"precision must be >= 0, got {precision}")
        if gradient in _RENAMED:
            raise ValueError(
                f"gradient {gradient!r} is now {_RENAMED[gradient]!r} (the same exact gradients, from two Aer runs "
                f"per step instead of Aer state vectors per image and weight): use gradient={_RENAMED[gradient]!r}"
            )
        if gradient not in GRADIENTS:
            raise ValueError(f"unknown gradient {gradient!r}; choose one of {', '.join(GRADIENTS)}")
        self.gradient = gradient
        self.num_qubits = num_qubits
        self.pairs, self.trash_qubits = list(pairs), tuple(trash_qubits)
        self._exact: ExactEngine | None = None  # reconstructions
        self.spec = estimator_circuit(num_qubits, trash_qubits=trash_qubits, pairs=pairs, decoder=decoder)
        circuit = self.spec.circuit
        # Aer runs the bindings of one PUB in parallel (its own threads)
        options: dict[str, Any] = {"default_precision": precision, "backend_options": {"max_parallel_experiments": 0}}
        if seed is not None:
            options["run_options"] = {"seed": seed}
        assert self.spec.readout_qubit is not None
        self.qnn = EstimatorQNN(
            circuit=circuit,
            estimator=SharedBindingsEstimator(EstimatorV2(options=options)),
            observables=_observables(circuit.num_qubits, self.spec.readout_qubit, self.spec.fresh),
            input_params=self.spec.input_parameters,
            weight_params=self.spec.weight_parameters,
            input_gradients=True,
            default_precision=precision,
        )
        # TorchConnector owns its weights; _ConnectorCall copies ours into them and routes the
        # gradients back, so the model keeps one set of Parameters for every engine.
        self.connector = TorchConnector(self.qnn) if gradient == "param_shift" else None
        self._aer = AerAdjointGradient(num_qubits, pairs, trash_qubits) if self.connector is None else None

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
    """Forward: ``EstimatorQNN`` (the three observables). Backward: exact gradients from two Aer runs
    (the adjoint method)."""

    @staticmethod
    def forward(
        ctx, weights: torch.Tensor, psi: torch.Tensor, chi: torch.Tensor, engine: EstimatorEngine, untied: bool
    ):
        psi_np, chi_np = psi.detach().numpy(), chi.detach().numpy()
        w = weights.detach().double().numpy()
        angles = np.concatenate([embedding_angles(psi.detach()).numpy(), embedding_angles(chi.detach()).numpy()], 1)
        values = engine.qnn.forward(angles, w)
        ctx.engine, ctx.arrays, ctx.untied = engine, (w, psi_np, chi_np), untied
        return torch.as_tensor(np.asarray(values).reshape(len(psi_np), 3), dtype=torch.float64)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        w, psi, chi = ctx.arrays
        half = len(w) // 2 if ctx.untied else len(w)
        theta, phi = w[:half], (w[half:] if ctx.untied else None)
        needs_inputs = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        assert ctx.engine._aer is not None
        dtheta, dphi, dpsi, dchi = ctx.engine._aer.backward(
            theta, phi, psi, chi, grad.detach().double().numpy(), input_grads=needs_inputs
        )
        dweights = torch.as_tensor(np.concatenate([dtheta, dphi]) if dphi is not None else dtheta)
        grad_psi = torch.as_tensor(dpsi) if dpsi is not None and ctx.needs_input_grad[1] else None
        grad_chi = torch.as_tensor(dchi) if dchi is not None and ctx.needs_input_grad[2] else None
        return dweights, grad_psi, grad_chi, None, None
