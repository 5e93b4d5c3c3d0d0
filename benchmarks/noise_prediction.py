"""How well the noisy engine predicts a device, and how fast: one run, one machine.

    python benchmarks/noise_prediction.py [--run RUN_DIR] [--images 8] [--backend fake_fez]

For a trained run (default: a 4x4-image QMAE trained here in seconds on the embedded sample, line
encoder), on the first test images with the run's masks: the exact fidelity; the noisy engine's
prediction under the device's mapped noise (:func:`qmae_qiskit.noise.device_noise`,
2,000 trajectories per image); and what Aer's density-matrix method returns for the ISA circuit under
the device's full noise model (local testing mode's), P(all data qubits read 0) of the
compute-uncompute circuit, with and without mthree's readout correction (the engine models no
readout error). Prints a table and the seconds per image of each.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained run (default: one trained here, 4x4 images, line encoder)")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--backend", default="fake_fez")
    parser.add_argument("--trajectories", type=int, default=2000)
    args = parser.parse_args()

    from qiskit_aer import AerSimulator

    from qmae_qiskit import load_model, train
    from qmae_qiskit.circuits import fidelity_from_counts
    from qmae_qiskit.engines.noisy import NoisyEngine
    from qmae_qiskit.model_circuits import parameter_values
    from qmae_qiskit.noise import device_noise
    from qmae_qiskit.runs import data_for_run, saved_evaluation_masks
    from qmae_qiskit.runtime.backends import get_backend
    from qmae_qiskit.runtime.transpile import isa_circuit

    run = args.run
    if run is None:
        run = f"{tempfile.mkdtemp()}/run"
        train(out=run, image_size=4, patch_size="2x2", pairs="line", epochs=2, limit=2000, eval_limit=0, progress=False)
    model = load_model(run)
    test = data_for_run(run, split="test", limit=args.images)
    masks = saved_evaluation_masks(run, model, len(test.images))
    backend = get_backend(args.backend)
    found = device_noise(model, backend, isa=isa_circuit(model, backend, "compute_uncompute"))
    print(found)

    with torch.no_grad():
        exact = model.fidelity(test.images, masks).double()
        engine = NoisyEngine(model.num_qubits, model.encoder_pairs, model.trash_qubits, noise=found.block_noise(),
                             dtype=torch.complex128, generator=torch.Generator().manual_seed(0))  # fmt: skip
        t = args.trajectories
        masked = model.fill(test.images, masks).flatten(1).repeat_interleave(t, 0)
        original = test.images.flatten(1).repeat_interleave(t, 0)
        start = time.perf_counter()
        noisy = engine.fidelity(model.theta.detach(), masked, original).reshape(-1, t)
        engine_s = (time.perf_counter() - start) / len(test.images)
    predicted, predicted_err = noisy.mean(1), noisy.std(1) / t**0.5

    isa = isa_circuit(model, backend, "compute_uncompute")
    values = parameter_values(model, test.images, masks, "compute_uncompute")
    sim = AerSimulator.from_backend(backend, method="density_matrix")
    shots = 20000
    start = time.perf_counter()
    measured = []
    for row in values:
        bound = isa.assign_parameters(dict(zip(isa.parameters, row)))
        counts = sim.run(bound, shots=shots, seed_simulator=0).result().get_counts()
        measured.append(fidelity_from_counts(counts, variant="compute_uncompute", num_qubits=model.num_qubits)[0])
    aer_s = (time.perf_counter() - start) / len(test.images)
    measured_arr = np.array(measured)

    returned = np.array([found.measured(float(f)) for f in predicted])
    columns = (
        "image",
        "exact",
        "noisy engine",
        "+ reference and readout (predicted)",
        "Aer, device noise",
        "Aer - predicted",
    )
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|")
    for i in range(len(test.images)):
        print(f"| {i} | {exact[i]:.4f} | {predicted[i]:.4f} ± {predicted_err[i]:.4f} | {returned[i]:.4f} | "
              f"{measured_arr[i]:.4f} | {measured_arr[i] - returned[i]:+.4f} |")  # fmt: skip
    print(f"| mean | {exact.mean():.4f} | {predicted.mean():.4f} | {returned.mean():.4f} | {measured_arr.mean():.4f} | "
          f"{measured_arr.mean() - returned.mean():+.4f} |")  # fmt: skip
    print(f"seconds per image: noisy engine {engine_s:.3f} ({t} trajectories), Aer density matrix {aer_s:.3f}")


if __name__ == "__main__":
    main()
