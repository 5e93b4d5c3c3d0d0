"""``qmae``: the command-line front door. It parses, calls the library, and prints one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from .checkpoint import CheckpointError
from .data import ENV_DATA_DIR, DataError
from .engines import ENGINES

_TRAIN_OPTIONS = {
    "model": dict(
        choices=("qmae", "qae"), help="qmae (learnable mask token) or qae (zeros, the baseline); default qmae"
    ),
    "mask_ratio": dict(type=float, help="fraction of the image masked, a whole number of patches; default 0.25"),
    "patch_size": dict(help="patch height x width, e.g. 8x8 (default) or 8x4"),
    "image_size": dict(type=int, help="image side, a power of 2; default 16 (8 qubits)"),
    "latent_qubits": dict(type=int, help="latent qubits k (default n - 1)"),
    "pairs": dict(
        choices=("all", "line", "line2"),
        help="encoder qubit pairs: all (the paper's, default), line or line2 (neighbours on a line, once or twice: no "
        "routing on hardware)",
    ),
    "engine": dict(choices=ENGINES, help="exact (batched torch, default) or estimator (EstimatorQNN on Aer)"),
    "epochs": dict(type=int, help="passes over the training images; default 3"),
    "batch_size": dict(
        type=int,
        help="images per Adam step (1 = the paper's Algorithm 1); default 32 "
        "(best fidelity per minute, docs/batch_size.md)",
    ),
    "lr": dict(type=float, help="Adam learning rate; default 0.02"),
    "schedule": dict(choices=("constant", "cosine"), help="learning-rate schedule; default cosine"),
    "seed": dict(type=int, help="seeds weights, data order and masks; default 0"),
    "limit": dict(type=int, help="train on the first N images, class-balanced"),
    "dataset": dict(
        metavar="NAME",
        help="mnist (default), fashion-mnist, kmnist, emnist-digits, cifar10-gray, or folder:PATH (a directory of "
        "image files; class sub-folders give labels)",
    ),
    "test_fraction": dict(
        type=float, help="a folder without train/ and test/ sub-folders: share of its files for testing (default 0.2)"
    ),
    "data_dir": dict(help="MNIST in torchvision's layout (else $QMAE_DATA_DIR, --download, or the embedded default)"),
    "checkpoint_every": dict(type=int, help="also checkpoint every N steps (default: at epoch ends)"),
    "eval_limit": dict(type=int, help="held-out images scored after each epoch (default 1000; 0 skips)"),
    "device": dict(help="torch device of the exact engine: cpu (default), cuda, cuda:1, ..."),
    "embedding_layers": dict(
        type=int,
        help="train with the approximate ladder embedding hardware runs (L layers of n-1 CNOTs; slow: for fine-tuning)",
    ),
    "trash_weight": dict(
        type=float,
        help="add this weight times mean(1 - P(trash = 0)) to the paper's loss "
        "(Romero et al.'s compression term; default 0 = the paper's loss)",
    ),
    "objective": dict(
        choices=("reset", "postselect"),
        help="reset the trash qubit (the paper's, default) or measure it and keep the shots where it reads 0",
    ),
    "keep_weight": dict(
        type=float,
        help="with --objective postselect: weight of mean(1 - P(keep)) in the loss, which holds the kept "
        "fraction up (default 0.05, chosen on held-out training images)",
    ),
    "layers": dict(type=int, help="repetitions of the pair layer, each with its own weights; default 1"),
    "decoder": dict(
        choices=("tied", "untied"), help="tied: U^dagger (the paper's, default); untied: an independent decoder"
    ),
    "token": dict(choices=("shared", "per-patch"), help="one mask token for every patch (default) or one per patch"),
    "ansatz": dict(
        choices=("blocks", "unitary"),
        help="blocks: the paper's two-qubit blocks (default); unitary: a general unitary, the architecture's "
        "ceiling (a bound, not a circuit; exact engine, n <= 10)",
    ),
    "holdout": dict(type=int, help="keep the last N training images out of training (to choose options on them)"),
    "init_from": dict(
        metavar="RUN_DIR", help="start from a trained run's weights and token (fine-tuning; its architecture is kept)"
    ),
}


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (the usage stays available with --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"qmae: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qmae", description="Quantum masked autoencoders on Qiskit.")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="log progress (transpiling, jobs, waiting) at INFO"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    tr = sub.add_parser(
        "train", help="train a QMAE or QAE into a run directory", description="Train a QMAE or QAE (Adam on 1 - F)."
    )
    target = tr.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", metavar="RUN_DIR", help="new run directory")
    target.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run (no other options needed)")
    for name, kwargs in _TRAIN_OPTIONS.items():
        tr.add_argument("--" + name.replace("_", "-"), dest=name, default=None, **kwargs)
    tr.add_argument(
        "--download",
        action="store_true",
        default=None,
        help="download the dataset with torchvision (needs the internet)",
    )
    tr.add_argument(
        "--skip-unreadable",
        action="store_true",
        default=None,
        help="skip a folder's files Pillow cannot read (default: refuse them, naming the first few)",
    )
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")

    ev = sub.add_parser(
        "evaluate",
        help="score a trained run on held-out images",
        description="Fidelity, cosine similarity, SSIM, PSNR and ResNet18 accuracy of a trained run on held-out "
        "images, with the run's saved evaluation masks.",
    )
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--data-dir", help="where the run's dataset is, if not where it was (default: found as it was)")
    ev.add_argument("--split", choices=("test", "train"), default="test", help="default test")
    ev.add_argument("--limit", type=int, help="first N images, class-balanced (default: all)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument(
        "--embedding-layers",
        type=int,
        metavar="L",
        help="evaluate with the approximate ladder embedding hardware runs (L layers of n-1 CNOTs)",
    )
    ev.add_argument(
        "--no-accuracy",
        action="store_true",
        help="skip the ResNet18 accuracy (the classifier trains once, then is cached)",
    )

    rp = sub.add_parser(
        "reproduce",
        help="re-run the paper's evaluation section, with the inpainting table (REPORT.md)",
        description="Train or reuse QMAE/QAE at 25 % (reset, + trash term, post-selected) and QMAE at 12.5 % and "
        "50 %, evaluate on the test split next to the pass-through rows, write tables, figures and an honest report.",
    )
    rp.add_argument("--out", required=True, metavar="DIR")
    rp.add_argument("--quick", action="store_true", help="small subsets and one epoch: checks the pipeline in minutes")
    rp.add_argument("--data-dir", help="MNIST in torchvision's layout (else $QMAE_DATA_DIR or the embedded sample)")
    rp.add_argument(
        "--dataset", default="mnist", metavar="NAME", help="the dataset (as qmae train --dataset; default mnist)"
    )
    rp.add_argument("--seeds", type=int, default=1, help="seeds per configuration: rows become mean ± std (default 1)")
    rp.add_argument("--no-progress", action="store_true")

    st = sub.add_parser(
        "study",
        help="inpainting across architectures and seeds, with the ceiling and the pass-through rows",
        description="Train or reuse QMAE at 25 % over objective x layers x latent x decoder x token and the "
        "general-unitary ceiling, score every run on the test split, write results.json, report.md and figures.",
    )
    st.add_argument("--out", required=True, metavar="DIR")
    st.add_argument("--seeds", type=int, default=3, help="seeds per configuration (default 3)")
    st.add_argument("--ceiling-seeds", type=int, default=1, help="seeds per ceiling configuration (default 1)")
    st.add_argument("--data-dir", help="MNIST in torchvision's layout (else $QMAE_DATA_DIR or the embedded sample)")
    st.add_argument(
        "--dataset", default="mnist", metavar="NAME", help="the dataset (as qmae train --dataset; default mnist)"
    )
    st.add_argument("--limit", type=int, help="score on the first N test images (default: all)")
    st.add_argument("--quick", action="store_true", help="one epoch, a few configurations: checks the pipeline")
    st.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs trained and scored at once, each in its own process with cores/jobs threads (default 1); "
        "small circuits run faster as several single-threaded processes than as one",
    )
    st.add_argument("--no-progress", action="store_true")

    cl = sub.add_parser("classifier", help="the ResNet18 digit classifier (train / cache)")
    cl_sub = cl.add_subparsers(dest="classifier_command", required=True)
    ct = cl_sub.add_parser(
        "train",
        help="train the classifier on the training split and cache it",
        description="Train ResNet18 (16x16, 1 channel, no first max-pool) and cache its weights.",
    )
    ct.add_argument("--data-dir", help="MNIST in torchvision's layout (else $QMAE_DATA_DIR or the embedded sample)")
    ct.add_argument(
        "--dataset", default="mnist", metavar="NAME", help="the dataset (as qmae train --dataset; default mnist)"
    )
    ct.add_argument("--epochs", type=int, default=8)
    ct.add_argument("--force", action="store_true", help="train again even if cached")
    ct.add_argument("--no-progress", action="store_true")

    from .runtime.commands import add_commands

    add_commands(sub)

    # options are parsed by qmae_qiskit.bench itself (``qmae bench --help``)
    bench = sub.add_parser("bench", help="benchmark every training path (qmae bench --help)", add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    return parser


def _train(args: argparse.Namespace) -> int:
    from .training import TrainConfig, resume, train

    options = {name: getattr(args, name) for name in list(_TRAIN_OPTIONS) + ["download", "skip_unreadable"]}
    if args.resume:
        result = resume(args.resume, progress=not args.no_progress, **options)
    else:
        config = dataclasses.replace(TrainConfig(), **{k: v for k, v in options.items() if v is not None})
        result = train(config, out=args.out, progress=not args.no_progress)
        if (
            config.dataset == "mnist"
            and not config.data_dir
            and not config.download
            and not os.environ.get(ENV_DATA_DIR)
        ):
            print(
                "data: the embedded MNIST sample (4,000 train / 1,000 test images); --data-dir DIR or --download for "
                "full MNIST",
                file=sys.stderr,
            )
    if result.history:
        print(f"final batch fidelity {result.history[-1]['fidelity']:.4f}", end="")
    if result.eval_fidelity is not None:
        print(f"; held-out fidelity {result.eval_fidelity:.4f}", end="")
    print(f"  ({result.run_dir})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_run

    out = evaluate_run(
        args.run_dir,
        split=args.split,
        data_dir=args.data_dir,
        limit=args.limit,
        with_accuracy=not args.no_accuracy,
        progress=not args.json,
        embedding_layers=args.embedding_layers,
    )
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{out['images']} {args.split} images ({out['source']}), the run's saved masks, visible-pixel scaling:")
    for key in ("fidelity", "cosine_similarity", "ssim", "ssim_torchmetrics", "psnr", "accuracy"):
        if key in out:
            print(f"  {key:<18} {out[key]:.4f} ± {out[key + '_stderr']:.4f}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from .reproduce import reproduce

    result = reproduce(
        args.out,
        quick=args.quick,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        seeds=args.seeds,
        dataset=args.dataset,
    )
    for name in ("qmae-25", "qae-25", "qmae-25-postselect"):
        s = {k: v["mean"] for k, v in result["summary"][name].items()}
        print(
            f"{name:<19} fidelity {s['fidelity']:.3f} (gain {s['fidelity_gain']:+.3f}), masked PSNR "
            f"{s['masked_psnr']:.2f} dB" + (f", accuracy {100 * s['accuracy']:.2f} %" if "accuracy" in s else "")
        )
    fill = result["passthrough"]["mean_image"]
    print(f"{'mean-image fill':<19} fidelity {fill['fidelity']:.3f}, masked PSNR {fill['masked_psnr']:.2f} dB")
    print(f"wrote {args.out}/inpainting.md, table1.md, table1.csv, table1.json, fig6-8.png, inpainting.png, REPORT.md")
    return 0


def _study(args: argparse.Namespace) -> int:
    from .study import study

    result = study(
        args.out,
        seeds=args.seeds,
        ceiling_seeds=args.ceiling_seeds,
        data_dir=args.data_dir,
        dataset=args.dataset,
        limit=args.limit,
        quick=args.quick,
        jobs=args.jobs,
        progress=not args.no_progress,
    )
    for v in result["verdicts"]:
        print(f"- {v['sentence']}")
    print(f"wrote {args.out}/results.json, report.md, reconstructions_*.png")
    return 0


def _classifier(args: argparse.Namespace) -> int:
    from .classifier import ClassifierOptions, accuracy, cached_classifier
    from .datasets import load_dataset

    train_set = load_dataset(args.dataset, "train", root=args.data_dir)
    test_set = load_dataset(args.dataset, "test", root=args.data_dir)
    model, path = cached_classifier(
        train_set, ClassifierOptions(epochs=args.epochs), progress=not args.no_progress, force=args.force
    )
    acc, err = accuracy(model, test_set.images, test_set.labels)
    print(
        f"ResNet18 accuracy on {len(test_set.images)} clean test images: {100 * acc:.2f} % ± {100 * err:.2f} ({path})"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qmae`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # its own parser: ``qmae bench --help``
        from .bench import main as bench_main

        return bench_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.verbose:  # ours and the runtime client's progress (as its docs advise), not every transpiler pass
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        for name in ("qmae_qiskit", "qiskit_ibm_runtime"):
            logging.getLogger(name).setLevel(logging.INFO)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "reproduce":
            return _reproduce(args)
        if args.command == "study":
            return _study(args)
        if args.command == "classifier":
            return _classifier(args)
        from .runtime.commands import run_command

        return run_command(args)
    except (ValueError, DataError, CheckpointError) as exc:
        print(f"qmae: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file system that refuses: read-only, full, a name too long, ...
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"qmae: error: {exc.strerror or exc}{where}; check the path and that it is writable", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping already: a further Ctrl-C must not cut the exit short
        print(f"qmae: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a bad input: one line, the traceback on request
        if os.environ.get("QMAE_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(
            f"qmae: error: unexpected {type(exc).__name__}: {first} "
            "(QMAE_DEBUG=1 shows the traceback; please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
