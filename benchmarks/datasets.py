r"""Datasets table: QMAE vs QAE on MNIST and on a ``folder:`` copy of the same MNIST images as PNGs.

    python benchmarks/datasets.py --data-dir ../shared/data/mnist --out runs/datasets \
        --json docs/datasets.json

Writes the class-balanced first ``--train`` MNIST training images and first ``--test`` test images
as PNG files (``PATH/train/<digit>/<rank>.png``, ``PATH/test/<digit>/<rank>.png``, named by rank so
that the folder reads back in MNIST's order), trains QMAE and QAE (25 %, 3 epochs, seed 0) on
``--dataset mnist --limit N`` and on ``--dataset folder:PATH``, and scores all four on the same
test images with the same saved masks. The MNIST and folder rows must agree: the folder path
loses nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def write_copy(data_dir: str | None, root: Path, train: int, test: int) -> Path:
    from PIL import Image
    from torchvision.datasets import MNIST

    from qmae_qiskit.data import balanced_subset, load_mnist

    for split, count in (("train", train), ("test", test)):
        source = load_mnist(split, root=data_dir)  # for the labels; the PNGs get the raw 28x28 pixels
        raw = MNIST(source.root, train=split == "train").data if source.root else None
        if raw is None:
            raise SystemExit("this copy needs MNIST's files: pass --data-dir")
        idx = balanced_subset(source.labels, count)
        for rank, i in enumerate(idx.tolist()):
            where = root / split / str(int(source.labels[i]))
            where.mkdir(parents=True, exist_ok=True)
            Image.fromarray(raw[i].numpy().astype(np.uint8)).save(where / f"{rank:05d}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="MNIST in torchvision's layout")
    parser.add_argument("--out", required=True)
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()

    from qmae_qiskit import train
    from qmae_qiskit.evaluation import evaluate_run

    out = Path(args.out)
    folder = out / "mnist-png"
    if not folder.exists():
        write_copy(args.data_dir, folder, args.train, args.test)
    rows = []
    for model in ("qmae", "qae"):
        for name, options in (
            ("mnist", dict(dataset="mnist", data_dir=args.data_dir, limit=args.train)),
            (f"folder:{folder}", dict(dataset=f"folder:{folder}")),
        ):
            run = out / f"{model}-{'mnist' if name == 'mnist' else 'folder'}"
            start = time.perf_counter()
            if not (run / "checkpoint.pt").exists():
                train(out=run, model=model, epochs=3, seed=0, eval_limit=0, progress=False, **options)
            seconds = time.perf_counter() - start
            limit = args.test if name == "mnist" else None
            scores = evaluate_run(run, limit=limit, progress=False).to_json()
            row = {
                "model": model.upper(),
                "dataset": "mnist" if name == "mnist" else "folder (PNG copy)",
                "train_s": round(seconds, 1),
            }
            for key in ("fidelity", "fidelity_gain", "masked_psnr", "cosine_similarity", "accuracy"):
                row[key], row[key + "_stderr"] = scores[key], scores[key + "_stderr"]
            row["images"] = scores["images"]
            rows.append(row)
            print(
                f"{row['model']:<4} {row['dataset']:<18} F {row['fidelity']:.6f}  gain {row['fidelity_gain']:+.6f}  "
                f"masked PSNR {row['masked_psnr']:.4f} dB  accuracy {100 * row['accuracy']:.2f} %  "
                f"({row['images']} images)",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"train": args.train, "test": args.test, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
