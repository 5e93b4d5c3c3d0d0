"""What a device will return, before any shot is spent: the noisy engine under the device's noise.

``qmae submit RUN --backend DEVICE --dry-run`` prints it: for the first test images (the run's
evaluation masks), the exact fidelity, the noisy engine's under the device's calibration mapped onto
the circuit (:mod:`qmae_qiskit.noise`), and the value a compute-uncompute job would return (the
reference's embedding and the readout added). Measured against local testing mode in
docs/hardware.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..engines.noisy import NoisyEngine
from ..model import load_model
from ..noise import DeviceNoise, device_noise
from ..runs import data_for_run, saved_evaluation_masks
from .backends import get_backend
from .options import SubmitOptions
from .transpile import isa_circuit

__all__ = ["Prediction", "predict"]


@dataclass(frozen=True)
class Prediction:
    """What a device will return for a run's first test images.

    Attributes:
        backend: the device.
        noise: its calibration mapped onto the circuit.
        exact: per image, the noiseless fidelity.
        noisy: per image, the noisy engine's mean over ``trajectories``.
        returned: per image, what a compute-uncompute job returns (:meth:`DeviceNoise.measured`).
        trajectories: Pauli trajectories per image.
    """

    backend: str
    noise: DeviceNoise
    exact: list[float]
    noisy: list[float]
    returned: list[float]
    trajectories: int

    def as_json(self) -> dict[str, object]:
        """The prediction as one JSON object."""
        from dataclasses import asdict

        return asdict(self)


def predict(
    run_dir: str,
    backend: str,
    *,
    images: int = 4,
    data_dir: str | None = None,
    optimization_level: int = SubmitOptions.optimization_level,
    trajectories: int = 1000,
    seed: int = 0,
) -> Prediction:
    """The noisy engine's prediction for the run's first ``images`` test images on ``backend``.

    Raises:
        ValueError: a backend without calibration (Aer), or a model the noisy engine does not run
            (ancillas, the unitary ansatz, the ladder embedding).
    """
    model = load_model(run_dir)
    if model.embedding_layers is not None or model.condition != "none":
        raise ValueError("--dry-run predicts runs with the exact embedding and one encoder; this run has another")
    device = get_backend(backend)
    isa = isa_circuit(model, device, "compute_uncompute", optimization_level=optimization_level)
    found = device_noise(model, device, isa=isa, optimization_level=optimization_level)
    test = data_for_run(run_dir, split="test", data_dir=data_dir, limit=images)
    masks = saved_evaluation_masks(run_dir, model, len(test.images))
    engine = NoisyEngine(model.num_qubits, model.encoder_pairs, model.trash_qubits, noise=found.block_noise(),
                         dtype=torch.complex128, generator=torch.Generator().manual_seed(seed))  # fmt: skip
    with torch.no_grad():
        exact = model.fidelity(test.images, masks).double()
        masked = model.fill(test.images, masks).flatten(1).repeat_interleave(trajectories, 0)
        original = test.images.flatten(1).repeat_interleave(trajectories, 0)
        decoder = model.decoder_theta.detach() if model.decoder_theta is not None else None
        noisy = engine.fidelity(model.theta.detach(), masked, original, decoder=decoder).reshape(-1, trajectories)
    means = noisy.mean(1).tolist()
    return Prediction(
        backend=found.backend,
        noise=found,
        exact=exact.tolist(),
        noisy=means,
        returned=[found.measured(f) for f in means],
        trajectories=trajectories,
    )
