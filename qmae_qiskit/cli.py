"""``qmae``: the command-line front door. It parses, calls the library, and prints one-line errors."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .checkpoint import CheckpointError
from .data import ENV_DATA_DIR, DataError
from .model import ModelConfig
from .options import FLAG, OptionError, add_flags
from .training import TrainConfig


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (the usage stays available with --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"qmae: error: {message} (see '{self.prog} --help')\n")


def _count(text: str) -> int:
    """An argparse type: a whole number >= 1 (``--limit -5`` and ``--seeds 0`` are refused before
    anything runs)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {value}")
    return value


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
    # every option from its one declaration (ModelConfig, TrainConfig): type, choices, help, default
    architecture = tr.add_argument_group("architecture (qmae_qiskit.ModelConfig)")
    add_flags(architecture, ModelConfig)
    loop = tr.add_argument_group("training (qmae_qiskit.TrainConfig)")
    add_flags(loop, TrainConfig)
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
    ev.add_argument("--limit", type=_count, help="first N images, class-balanced (default: all)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument(
        "--embedding-layers",
        type=_count,
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
    rp.add_argument(
        "--seeds", type=_count, default=1, help="seeds per configuration: rows become mean ± std (default 1)"
    )
    rp.add_argument("--jobs", type=_count, default=1, help="runs trained at once, each in its own process (default 1)")
    _executor_flags(rp)
    rp.add_argument("--no-progress", action="store_true")

    st = sub.add_parser(
        "study",
        help="inpainting across architectures and seeds, with the ceiling and the pass-through rows",
        description="Train or reuse QMAE at 25 % over objective x layers x latent x decoder x token and the "
        "general-unitary ceiling, score every run on the test split, write results.json, report.md and figures.",
    )
    st.add_argument("--out", required=True, metavar="DIR")
    st.add_argument("--seeds", type=_count, default=3, help="seeds per configuration (default 3)")
    st.add_argument("--ceiling-seeds", type=_count, default=1, help="seeds per ceiling configuration (default 1)")
    st.add_argument("--data-dir", help="MNIST in torchvision's layout (else $QMAE_DATA_DIR or the embedded sample)")
    st.add_argument(
        "--dataset", default="mnist", metavar="NAME", help="the dataset (as qmae train --dataset; default mnist)"
    )
    st.add_argument("--limit", type=_count, help="score on the first N test images (default: all)")
    st.add_argument("--quick", action="store_true", help="one epoch, a few configurations: checks the pipeline")
    st.add_argument(
        "--jobs",
        type=_count,
        default=1,
        help="runs trained and scored at once, each in its own process with cores/jobs threads (default 1); "
        "small circuits run faster as several single-threaded processes than as one",
    )
    _executor_flags(st)
    st.add_argument("--no-progress", action="store_true")

    fs = sub.add_parser(
        "fill-study",
        help="a QMAE that fills in the patch: candidates chosen on held-out training images, the best tested once",
        description="Train the fill-in candidates (position conditioning, ancilla-assisted decoder, composite loss) "
        "with seed 0 and --holdout, choose on the held-out training images, train the chosen one's other seeds, "
        "score them on the test split next to the mean-image and linear fills and the chosen one's ceiling "
        "(general unitaries, the same seeds); write results.json and report.md.",
    )
    fs.add_argument("--out", required=True, metavar="DIR")
    fs.add_argument("--seeds", type=_count, default=3, help="seeds of the chosen configuration (default 3)")
    fs.add_argument("--data-dir", help="MNIST in torchvision's layout (else $QMAE_DATA_DIR or the embedded sample)")
    fs.add_argument("--limit", type=_count, help="score on the first N test images (default: all)")
    fs.add_argument("--quick", action="store_true", help="one epoch on 600 images: checks the pipeline")
    fs.add_argument("--jobs", type=_count, default=1, help="runs trained at once, each in its own process (default 1)")
    fs.add_argument(
        "--no-ceiling", action="store_true", help="leave out the chosen configuration's ceiling (general unitaries)"
    )
    _executor_flags(fs)
    fs.add_argument("--no-progress", action="store_true")

    pr = sub.add_parser(
        "probe",
        help="linear probes of the latent features (Pauli expectation values) and the baselines",
        description="Fit a logistic regression (C by 3-fold cross-validation on the training split) on frozen "
        "features of clean and masked training images: the run's latent Pauli expectation values, an untrained "
        "encoder's, the input state's, the pixels and their PCA; score each once on the test split.",
    )
    pr.add_argument("run_dir", metavar="RUN_DIR")
    pr.add_argument("--data-dir", help="MNIST in torchvision's layout (default: the run's own source)")
    pr.add_argument("--limit", type=_count, help="score on the first N test images (default: all)")
    pr.add_argument("--train-limit", type=_count, help="fit on the first N training images (default: all)")
    pr.add_argument("--kind", choices=("pauli2", "pauli1"), default="pauli2", help="observables (default pauli2)")
    pr.add_argument(
        "--job",
        metavar="JOB_ID",
        help="score the probe on the features a device measured instead (a qmae submit RUN_DIR --features job; "
        "its kind and images), next to the exact features of the same images",
    )
    pr.add_argument("--json", action="store_true", help="print the result as one JSON object")

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
    ct.add_argument(
        "--epochs",
        type=_count,
        help="passes over the training images (default: ClassifierOptions.epochs, the cached one)",
    )
    ct.add_argument("--force", action="store_true", help="train again even if cached")
    ct.add_argument("--no-progress", action="store_true")

    from .runtime.commands import add_commands

    add_commands(sub)

    # options are parsed by qmae_qiskit.studies.bench itself (``qmae bench --help``)
    bench = sub.add_parser("bench", help="benchmark every training path (qmae bench --help)", add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    return parser


def _train(args: argparse.Namespace) -> int:
    from .training import resume, train

    options = {name: getattr(args, name) for name in TrainConfig.flat_names() if hasattr(args, name)}
    if args.resume:
        result = resume(args.resume, progress=not args.no_progress, **options)
    else:
        config = TrainConfig.of(**{k: v for k, v in options.items() if v is not None})
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
    keys: tuple[str, ...] = ("fidelity", "keep_probability", "fidelity_per_shot", "cosine_similarity", "ssim")
    keys += ("ssim_torchmetrics", "psnr", "masked_psnr", "accuracy", "composite_fidelity", "composite_accuracy")
    for key in keys:
        if key in out:
            print(f"  {key:<18} {out[key]:.4f} ± {out[key + '_stderr']:.4f}")
    print("pass-through on the same masks (the filled input itself):")
    for name, row in out["passthrough"].items():
        accuracy = f", accuracy {row['accuracy']:.4f}" if "accuracy" in row else ""
        print(f"  {name:<18} fidelity {row['fidelity']:.4f}, masked PSNR {row['masked_psnr']:.2f} dB{accuracy}")
    return 0


def _probe(args: argparse.Namespace) -> int:
    from .probe import probe

    if args.job:
        from .runtime import load_record, probe_job

        record = load_record(args.job)
        if Path(record.run_dir).resolve() != Path(args.run_dir).resolve():
            raise ValueError(f"job {args.job} measured {record.run_dir}, not {args.run_dir}: name that run")
        device = probe_job(args.job, data_dir=args.data_dir, train_limit=args.train_limit)
        if args.json:
            print(json.dumps(device.as_json()))
            return 0
        d = device

        def cell(p: float, i: tuple[float, float]) -> str:
            return f"{100 * p:.2f} % [{100 * i[0]:.2f}, {100 * i[1]:.2f}]"

        def diff(c: dict[str, float]) -> str:
            return f"{100 * c['mean']:+.2f} pp [{100 * c['low']:+.2f}, {100 * c['high']:+.2f}]"

        which = "masked" if d.masked else "clean"
        print(
            f"{args.run_dir}: probe fitted on {d.train_images} training images' exact {d.kind} features, scored on "
            f"the {d.images} {which} test images of job {d.record_id} ({d.backend}, {d.shots_per_image} shots per "
            f"image, {d.total_shots} in all)"
        )
        print(f"  exact features:                      {cell(d.exact_accuracy, d.exact_interval)}")
        print(
            f"  device features:                     {cell(d.device_accuracy, d.device_interval)}  "
            f"minus exact {diff(d.device_minus_exact)}"
        )
        print(
            f"  device features, own standardization: {cell(d.restandardized_accuracy, d.restandardized_interval)}  "
            f"minus exact {diff(d.restandardized_minus_exact)}"
        )
        print(
            f"  features: mean |device - exact| {d.mean_abs_error:.4f}, slope {d.slope:.3f}, "
            f"correlation {d.correlation:.3f}"
        )
        return 0
    result = probe(args.run_dir, data_dir=args.data_dir, limit=args.limit, train_limit=args.train_limit, kind=args.kind)
    if args.json:
        print(json.dumps(result.as_json()))
        return 0
    print(f"{result.run_dir}: {result.train_images} training, {result.test_images} test images, {result.kind}")
    print(result.table())
    for name, c in result.comparisons.items():
        print(f"  {name}: {100 * c['mean']:+.2f} pp [{100 * c['low']:+.2f}, {100 * c['high']:+.2f}]")
    return 0


def _executor(args: argparse.Namespace) -> dict[str, Any]:
    """The studies' executor keywords, from the flags :func:`_executor_flags` adds."""
    return {"executor": args.executor, "address": args.address, "cpus_per_run": args.cpus_per_run}


def _executor_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: --jobs processes here (default); ray: each run a Ray task (pip install 'qmae-qiskit[ray]')",
    )
    parser.add_argument(
        "--address",
        metavar="ADDR",
        help="with --executor ray: the cluster to join (auto, ray://head:10001; default: a local Ray instance)",
    )
    parser.add_argument(
        "--cpus-per-run", type=_count, default=1, metavar="N", help="with --executor ray: CPUs per run (default 1)"
    )


def _reproduce(args: argparse.Namespace) -> int:
    from .studies.reproduce import reproduce

    result = reproduce(
        args.out,
        quick=args.quick,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        seeds=args.seeds,
        dataset=args.dataset,
        jobs=args.jobs,
        **_executor(args),
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
    from .studies.study import study

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
        **_executor(args),
    )
    for v in result["verdicts"]:
        print(f"- {v['sentence']}")
    print(f"wrote {args.out}/results.json, report.md, reconstructions_*.png")
    return 0


def _fill_study(args: argparse.Namespace) -> int:
    from .studies.fill import fill_study

    result = fill_study(
        args.out,
        seeds=args.seeds,
        data_dir=args.data_dir,
        limit=args.limit,
        quick=args.quick,
        jobs=args.jobs,
        progress=not args.no_progress,
        ceiling=not args.no_ceiling,
        **_executor(args),
    )
    print(f"chosen on held-out training images: {result['chosen']}")
    for v in result["verdicts"]:
        print(f"- {v['sentence']}")
    if "ceiling" in result:
        print(f"- {result['ceiling']['verdict']['sentence']}")
    print(f"wrote {args.out}/results.json, report.md")
    return 0


def _classifier(args: argparse.Namespace) -> int:
    from .classifier import ClassifierOptions, accuracy, cached_classifier, labels_of
    from .datasets import load_dataset

    train_set = load_dataset(args.dataset, "train", root=args.data_dir)
    test_set = load_dataset(args.dataset, "test", root=args.data_dir)
    options = ClassifierOptions() if args.epochs is None else ClassifierOptions(epochs=args.epochs)
    model, path = cached_classifier(train_set, options, progress=not args.no_progress, force=args.force)
    acc, err = accuracy(model, test_set.images, labels_of(test_set))
    print(
        f"ResNet18 accuracy on {len(test_set.images)} clean test images: {100 * acc:.2f} % ± {100 * err:.2f} ({path})"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qmae`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # its own parser: ``qmae bench --help``
        from .studies.bench import main as bench_main

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
        if args.command == "fill-study":
            return _fill_study(args)
        if args.command == "classifier":
            return _classifier(args)
        if args.command == "probe":
            return _probe(args)
        from .runtime.commands import run_command

        return run_command(args)
    except OptionError as exc:  # named as the flag the user typed
        print(f"qmae: error: {exc.render(FLAG)}", file=sys.stderr)
        return 2
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
        from .studies.experiments import RunFailed

        if isinstance(exc, RunFailed):  # runs failed on Ray; the finished ones are kept, the same command retries
            print(f"qmae: error: {exc}", file=sys.stderr)
            return 1
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
