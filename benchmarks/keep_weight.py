r"""Choosing the default --keep-weight of --objective postselect on held-out *training* images.

    python benchmarks/keep_weight.py --data-dir ../shared/data/mnist --out runs/keep-weight \
        --json docs/study/keep_weight.json

Trains the post-selected QMAE (25 %, the paper's all-pairs encoder, 3 epochs, seed 0) with each
weight on the training split minus its last 2,000 images (``--holdout 2000``), and scores each on
those 2,000 held-out training images, never on the test split: the fidelity of the kept shots,
the kept fraction, the gain over the filled input and the masked-region PSNR. Prints one line per
weight.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="MNIST in torchvision's layout (default: the embedded sample)")
    parser.add_argument("--out", required=True, help="where the runs go")
    parser.add_argument("--weights", default="0,0.05,0.1,0.2,0.5,1", help="keep weights to try")
    parser.add_argument("--holdout", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another training option for every run, e.g. token=per-patch (repeatable)",
    )
    args = parser.parse_args()

    from qmae_qiskit import train
    from qmae_qiskit.evaluation import evaluate_images
    from qmae_qiskit.runs import data_for_run, evaluation_masks

    options = {}
    for item in args.option:
        name, value = item.split("=", 1)
        options[name] = int(value) if value.isdigit() else value
    suffix = "".join(f"-{k}={v}" for k, v in options.items())
    rows = []
    for weight in [float(w) for w in args.weights.split(",")]:
        out = Path(args.out) / f"keep-{weight:g}{suffix}"
        start = time.perf_counter()
        result = train(
            out=out, objective="postselect", keep_weight=weight, holdout=args.holdout, data_dir=args.data_dir,
            epochs=args.epochs, eval_limit=0, seed=0, progress=False, **options,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        held = data_for_run(out, split="holdout", data_dir=args.data_dir)
        masks = evaluation_masks(len(held.images), result.model)
        with torch.no_grad():
            scores = evaluate_images(result.model, held.images, masks, with_ssim=False).to_json()
        row = {"keep_weight": weight, "options": options, "train_s": round(seconds, 1), "images": len(held.images)}
        for key in ("fidelity", "keep_probability", "fidelity_gain", "input_fidelity", "masked_psnr", "psnr"):
            row[key], row[key + "_stderr"] = scores[key], scores[key + "_stderr"]
        rows.append(row)
        print(
            f"keep weight {weight:<5g}{suffix} F_ps {row['fidelity']:.4f}  P(keep) {row['keep_probability']:.3f}  "
            f"gain {row['fidelity_gain']:+.4f}  masked PSNR {row['masked_psnr']:.2f} dB  ({seconds:.0f} s)",
            flush=True,
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        path = Path(args.json)
        saved = json.loads(path.read_text())["rows"] if path.is_file() else []

        def key(row: dict) -> str:  # one row per weight and options: a rerun replaces its row
            return json.dumps([row["keep_weight"], row.get("options", {})], sort_keys=True)

        merged = {key(r): r for r in saved + rows}
        path.write_text(
            json.dumps({"holdout": args.holdout, "epochs": args.epochs, "rows": list(merged.values())}, indent=1)
        )


if __name__ == "__main__":
    main()
