r"""Approximate embedding: fidelity with the image vs. two-qubit gates, over MNIST test images.

    python benchmarks/embedding_fidelity.py --data-dir ../shared/data/mnist --layers 4 8 16 \
        --json docs/embedding_fidelity.json

Prints one line per budget (mean, 5th percentile and minimum fidelity, CNOTs, seconds).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from qmae_qiskit.approx_embedding import DEFAULT_SWEEPS, fit_ladder, ladder_cnots
from qmae_qiskit.data import load_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="MNIST in torchvision's layout (default: the embedded sample)")
    parser.add_argument("--limit", type=int, help="first N test images (default: all)")
    parser.add_argument("--layers", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--sweeps", type=int, default=DEFAULT_SWEEPS)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    data = load_mnist("test", root=args.data_dir, image_size=16, limit=args.limit)
    vectors = data.images.flatten(1)
    rows = []
    for layers in args.layers:
        start = time.perf_counter()
        fit = fit_ladder(vectors, layers, sweeps=args.sweeps)
        f = fit.fidelity
        row = {
            "layers": layers,
            "cnots": ladder_cnots(8, layers),
            "images": len(f),
            "mean": f.mean().item(),
            "p5": torch.quantile(f, 0.05).item(),
            "min": f.min().item(),
            "seconds": time.perf_counter() - start,
            "sweeps": args.sweeps,
            "exact_cnots": 2**8 - 2,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"source": data.source, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
