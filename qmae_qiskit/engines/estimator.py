"""The estimator engine: the design card's path, ``EstimatorQNN`` + ``TorchConnector`` on Aer.

The QNN wraps the ``"paper"`` fidelity circuit (unitary up to the end, so a statevector estimator
is exact; a mid-circuit ``reset`` would make it stochastic) with the observable Z on the SWAP-test
ancilla, whose expectation is F. Its inputs are the embedding angles of the masked and of the
original image, its weights the encoder's theta; ``input_gradients=True`` carries the gradient back
through the angles to the mask token.

``EstimatorQNN`` defaults to ``default_precision=0.015625``, which makes Aer *sample*; here the
default is ``precision=0.0`` (exact expectation values). Pass a positive precision (or shots) to
train with shot noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.neural_networks import EstimatorQNN

from ..angles import embedding_angles
from ..circuits.fidelity import fidelity_circuit

__all__ = ["EstimatorEngine"]


class EstimatorEngine:
    """QMAE fidelity through ``EstimatorQNN`` + ``TorchConnector`` on ``qiskit_aer`` EstimatorV2.

    Args:
        num_qubits: data qubits ``n``.
        pairs: encoder qubit pairs.
        trash_qubits: the trash qubits.
        precision: target precision of the estimates; 0 gives exact statevector values.
        seed: seed of Aer's sampling when ``precision > 0``.
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
    ) -> None:
        if precision < 0:
            raise ValueError(f"precision must be >= 0, got {precision}")
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

    def _tie(self, theta: torch.nn.Parameter) -> None:
        # TorchConnector owns a weight Parameter; make it *the model's* theta so that one
        # optimizer, one state_dict and both engines see the same weights.
        if self.connector.weight is not theta:
            self.connector.register_parameter("weight", theta)
            self.connector._weights = theta  # the name TorchConnector.forward reads

    def fidelity(self, theta: torch.Tensor, masked: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        """F for each image (same contract as :meth:`ExactEngine.fidelity`)."""
        if not isinstance(theta, torch.nn.Parameter):
            theta = torch.nn.Parameter(theta.detach().clone(), requires_grad=False)
        self._tie(theta)
        inputs = torch.cat([embedding_angles(masked.float()), embedding_angles(original.float())], dim=1)
        values = self.connector(inputs).reshape(-1)
        # a masked image with no lit pixel has no state (the circuit would embed |0..0>)
        return values * (masked.abs().sum(1) > 0).to(values.dtype)
