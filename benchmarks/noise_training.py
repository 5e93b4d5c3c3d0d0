"""Does training through a device's noise help on that device? A first paired look, one machine.

    python benchmarks/noise_training.py [--images 40] [--epochs 3] [--backend fake_fez]

Trains the same small QMAE (4x4 images, line encoder, seed 0, the embedded sample's 4,000 training
images less 500 held out) twice: noiselessly and with ``--noise BACKEND``; then scores both on the
held-out *training* images (the test split is not looked at) with the run's own masks: the exact
fidelity, and what Aer's density-matrix method returns under the device's whole noise model (local
testing mode's, compute-uncompute, P(all zeros), 20,000 shots). Prints the means and the paired 95 %
interval of noise-aware minus noiseless (per image).
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backend", default="fake_fez")
    args = parser.parse_args()

    from qiskit_aer import AerSimulator

    from qmae_qiskit import load_model, train
    from qmae_qiskit.circuits import fidelity_from_counts
    from qmae_qiskit.metrics import paired_interval
    from qmae_qiskit.model_circuits import parameter_values
    from qmae_qiskit.noise import fake_backend
    from qmae_qiskit.runs import data_for_run
    from qmae_qiskit.runtime.transpile import isa_circuit

    backend = fake_backend(args.backend)
    sim = AerSimulator.from_backend(backend, method="density_matrix")
    root = tempfile.mkdtemp()
    common = dict(image_size=4, patch_size="2x2", pairs="line", epochs=args.epochs, holdout=500, eval_limit=0)
    runs = {
        "noiseless": train(out=f"{root}/clean", progress=False, **common).run_dir,
        "noise-aware": train(out=f"{root}/noisy", noise=args.backend, progress=False, **common).run_dir,
    }
    held = data_for_run(runs["noiseless"], split="holdout")
    images = held.images[: args.images]
    scores: dict[str, dict[str, np.ndarray]] = {}
    for name, run in runs.items():
        model = load_model(run)
        masks = model.random_mask(len(images), generator=torch.Generator().manual_seed(12345))
        with torch.no_grad():
            exact = model.fidelity(images, masks).double().numpy()
        isa = isa_circuit(model, backend, "compute_uncompute", cache=False)
        device = []
        for row in parameter_values(model, images, masks, "compute_uncompute"):
            bound = isa.assign_parameters(dict(zip(isa.parameters, row)))
            counts = sim.run(bound, shots=20000, seed_simulator=0).result().get_counts()
            device.append(fidelity_from_counts(counts, variant="compute_uncompute", num_qubits=4)[0])
        scores[name] = {"exact": exact, "device": np.array(device)}
    for name, s in scores.items():
        print(
            f"{name:<12} exact {s['exact'].mean():.4f}   {args.backend} (Aer, density matrix) {s['device'].mean():.4f}"
        )
    for key in ("exact", "device"):
        i = paired_interval(scores["noise-aware"][key], scores["noiseless"][key])
        print(f"noise-aware minus noiseless, {key}: {i.mean:+.4f} [{i.low:+.4f}, {i.high:+.4f}] ({len(images)} images)")


if __name__ == "__main__":
    main()
