"""Fidelity per minute against batch size (why the default batch is what it is).

    python benchmarks/batch_size.py --data-dir ../shared/data/mnist [--epochs 1] [--sizes 1,8,32,128,512]

Trains one QMAE (25 % mask, exact engine, Adam lr 0.02 cosine) per batch size for the same number of
epochs, and prints wall time, held-out fidelity (2,000 test images, saved masks) and fidelity gained
per minute. Writes the table as JSON to --json if given.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from qmae_qiskit.training import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--sizes", default="1,8,32,128,512")
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--eval-limit", type=int, default=2000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    print(f"{'batch':>6} {'steps':>7} {'seconds':>8} {'fidelity':>9}")
    for size in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result = train(
                out=out,
                data_dir=args.data_dir,
                epochs=args.epochs,
                batch_size=size,
                lr=args.lr,
                eval_limit=args.eval_limit,
                progress=False,
            )
            seconds = time.perf_counter() - start
        rows.append(
            {"batch_size": size, "steps": len(result.history), "seconds": seconds, "fidelity": result.eval_fidelity}
        )
        print(f"{size:>6} {len(result.history):>7} {seconds:>8.1f} {result.eval_fidelity:>9.4f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"epochs": args.epochs, "lr": args.lr, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
