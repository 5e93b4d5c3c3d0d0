"""A device's errors as the noisy engine injects them: the Pauli channels of a backend's calibration.

What the device runs is the ISA circuit (:func:`~qmae_qiskit.runtime.transpile.isa_circuit`), not the
logical one: routing adds two-qubit gates, and each gate has its own calibrated error. The engine
simulates the logical circuit, so the device's errors are mapped onto it (the approximation):

- every two-qubit gate the ISA circuit runs contributes its calibrated error; their mean ``e2`` and
  the routing factor ``r`` (ISA two-qubit gates per logical CNOT) turn a logical block (3 CNOTs, 6 RY
  of about 2 ``sx`` each) into ``3 r`` two-qubit gates of error ``e2`` and 12 ``sx`` of the mean
  ``sx`` error; the block's probability of no error is the product of the gates' (each gate's
  reported error, an average infidelity, read as a depolarizing channel: Pauli error probability
  ``e (d + 1) / d``), and the block's channel is the two-qubit depolarizing channel with that
  probability of no error (the twirled form of any error);
- the embedding's two-qubit gates (the ISA's others) make the embedding's error: a global
  depolarizing channel on the encoder's input state with the same per-gate errors;
- the same channel after the decoder's blocks as after the encoder's (the same gates, reversed).

What a device *returns* also suffers what training need not model: the reference's embedding run
backwards before the measurement (compute-uncompute: ``F -> (1 - q) F + q / 2^n``, ``q`` the
embedding's error) and the readout (each measured qubit reads 1 for 0 with its reported error).
:meth:`DeviceNoise.measured` applies both to a fidelity, so the engine predicts the number a job
returns. Left out altogether: relaxation and dephasing during idle time, crosstalk, and which physical
pair each block lands on (every block gets the circuit's mean). :func:`device_noise` says what it
found, so a user sees the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .engines.noisy import BlockNoise

__all__ = ["DeviceNoise", "device_noise", "fake_backend", "noise_for"]

# per logical block: 3 CNOTs and 6 RY, an RY being about 2 sx on IBM hardware (RZ is virtual: no error)
_BLOCK_CNOTS, _BLOCK_SX = 3, 12
_VARIANT = "compute_uncompute"  # the logical circuit the engine computes: embed, U, reset, U^dagger, uncompute


@dataclass(frozen=True)
class DeviceNoise:
    """A backend's errors mapped onto the model's logical circuit.

    Attributes:
        backend: the backend's name.
        two_qubit_gate: the device's two-qubit gate (``cz``, ``ecr``, ...).
        isa_two_qubit_gates: two-qubit gates of the ISA circuit.
        logical_two_qubit_gates: CNOTs of the logical circuit (the blocks' and the embeddings').
        routing_factor: ISA two-qubit gates per logical CNOT.
        two_qubit_error: the mean reported error of the ISA circuit's two-qubit gates.
        sx_error: the mean reported ``sx`` error on the qubits the ISA circuit uses.
        block_error: the depolarizing parameter of each block's channel.
        input_error: the embedding's global depolarizing probability.
        num_blocks: blocks of the encoder (and of the decoder).
        readout_error: the mean reported measurement error of the measured qubits.
        measured_qubits: how many qubits the circuit measures.
    """

    backend: str
    two_qubit_gate: str
    isa_two_qubit_gates: int
    logical_two_qubit_gates: int
    routing_factor: float
    two_qubit_error: float
    sx_error: float
    block_error: float
    input_error: float
    num_blocks: int
    readout_error: float = 0.0
    measured_qubits: int = 0

    def measured(self, fidelity: float) -> float:
        """What the device returns for a circuit of noiseless-engine or noisy-engine ``fidelity``:
        the reference's embedding (undone before the measurement) as a global depolarizing channel,
        then every measured qubit reading its 0 correctly (``P(all zeros)`` of compute-uncompute)."""
        dim = 2**self.measured_qubits
        depolarized = (1 - self.input_error) * fidelity + self.input_error / dim
        return depolarized * (1 - self.readout_error) ** self.measured_qubits

    def block_noise(self) -> BlockNoise:
        """The channels the :class:`~qmae_qiskit.engines.noisy.NoisyEngine` injects."""
        return BlockNoise.depolarizing(self.num_blocks, self.block_error, input_error=self.input_error)


def device_noise(model: Any, backend: Any, *, isa: Any = None, optimization_level: int = 3) -> DeviceNoise:
    """The device's errors for ``model``'s circuit on ``backend`` (see the module docstring).

    Args:
        model: a blocks-ansatz :class:`~qmae_qiskit.QMAE` without ancillas.
        backend: a backend with a calibrated target (a real device or a ``fake_*`` one).
        isa: the compute-uncompute circuit already transpiled for ``backend`` (the runtime passes its
            cached one); default: transpiled here (Qiskit's preset pass manager, seed 0).
        optimization_level: the transpiler's, as ``qmae submit`` uses it.

    Raises:
        ValueError: a backend without error data, or a model the noisy engine does not run.
    """
    if model.ansatz != "blocks" or model.ancillas:
        raise ValueError("device noise is mapped onto the blocks ansatz without ancillas (the noisy engine's circuit)")
    target: Any = getattr(backend, "target", None)
    two = [n for n in (target.operation_names if target is not None else ()) if _width(target, n) == 2]
    if not two:
        raise ValueError(f"{backend.name} reports no two-qubit gate errors: pick a real or fake_* device")
    from qiskit import transpile
    from qiskit.transpiler import generate_preset_pass_manager

    if isa is None:
        pm = generate_preset_pass_manager(optimization_level=optimization_level, backend=backend, seed_transpiler=0)
        isa = pm.run(model_template_circuit(model))
    logical = transpile(
        model_template_circuit(model),
        basis_gates=["cx", "rz", "ry", "sx", "x", "reset", "measure"],
        optimization_level=0,
    )
    errors: list[float] = []
    used: set[int] = set()
    for inst in isa.data:
        qargs = tuple(isa.find_bit(q).index for q in inst.qubits)
        used.update(qargs)
        if inst.operation.name in two:
            props = target[inst.operation.name].get(qargs)
            if props is not None and props.error is not None:
                errors.append(props.error)
    if not errors:  # Aer's ideal simulator: gates, no calibration
        raise ValueError(f"{backend.name} reports no two-qubit gate errors: pick a real or fake_* device")
    measured = [isa.find_bit(inst.qubits[0]).index for inst in isa.data if inst.operation.name == "measure"]
    props = [target["measure"].get((q,)) if "measure" in target.operation_names else None for q in measured]
    readout = [p.error for p in props if p is not None and p.error is not None]
    sx = [target["sx"][(q,)].error for q in used if "sx" in target.operation_names and (q,) in target["sx"]]
    sx_error = sum(e for e in sx if e is not None) / max(len(sx), 1)
    e2 = sum(errors) / max(len(errors), 1)
    logical_cx = sum(1 for inst in logical.data if inst.operation.name == "cx")
    factor = len(errors) / max(logical_cx, 1)
    p2, p1 = min(1.0, e2 * 5 / 4), min(1.0, sx_error * 3 / 2)  # average infidelity -> Pauli error probability
    blocks = len(model.encoder_pairs)
    clean = (1 - p2) ** (_BLOCK_CNOTS * factor) * (1 - p1) ** _BLOCK_SX
    embedding_cx = max(logical_cx - 2 * _BLOCK_CNOTS * blocks, 0) / 2  # the masked image's embedding: half of them
    input_clean = (1 - p2) ** (embedding_cx * factor)
    return DeviceNoise(
        backend=str(backend.name),
        two_qubit_gate=two[0],
        isa_two_qubit_gates=len(errors),
        logical_two_qubit_gates=logical_cx,
        routing_factor=factor,
        two_qubit_error=e2,
        sx_error=sx_error,
        block_error=min(16 / 15, 16 / 15 * (1 - clean)),
        input_error=1 - input_clean,
        num_blocks=blocks,
        readout_error=sum(readout) / max(len(readout), 1),
        measured_qubits=len(measured),
    )


def model_template_circuit(model: Any) -> Any:
    """The logical circuit the engine computes (the compute-uncompute variant, measured)."""
    from .model_circuits import template

    return template(model, _VARIANT, measure=True).circuit


def _width(target: Any, name: str) -> int:
    try:
        return int(target.operation_from_name(name).num_qubits)
    except (AttributeError, KeyError, TypeError):  # control flow is stored as a class, not an instruction
        return 0


def fake_backend(name: str) -> Any:
    """The ``fake_*`` device of that name (qiskit-ibm-runtime's snapshot of a real device's
    calibration), for noise a model trains under.

    Raises:
        ValueError: no such fake device (the names listed).
    """
    import warnings

    from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2

    provider = FakeProviderForBackendV2()
    try:
        return provider.backend(name)
    except Exception:  # QiskitBackendNotFoundError: say which names there are
        with warnings.catch_warnings():  # listing builds every fake device; some warn about their numbers
            warnings.simplefilter("ignore")
            names = sorted(b.name for b in provider.backends())
    close = [n for n in names if name[5:8] and name[5:8] in n][:5]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ValueError(f"unknown fake device {name!r}{hint}; the fake devices are: {', '.join(names)}") from None


def noise_for(model: Any, name: str) -> DeviceNoise:
    """:func:`device_noise` of a ``fake_*`` device by name (what ``qmae train --noise`` takes).

    Raises:
        ValueError: an unknown device, or a model the noisy engine does not run.
    """
    return device_noise(model, fake_backend(name))
