"""``qmae study``: does a quantum masked autoencoder fill in the patch? Across architectures and seeds.

The grid: objective (reset, postselect) x layers (1, 2) x latent qubits (7, 6, 5) x decoder (tied,
untied) x token (shared, per-patch), 48 configurations of QMAE at 25 % (one 8x8 patch of a 16x16
image), each trained for ``seeds`` seeds with the same options as ``qmae reproduce`` (exact engine,
Adam lr 0.02 cosine, batch 32, 3 epochs; post-selected runs with the default acceptance weight).
Next to them the **ceiling**: the same channel with a general unitary instead of the circuit
(``--ansatz unitary``, latent 7, both objectives, tied and untied decoders, shared and per-patch
tokens where listed in :data:`CEILINGS`), a bound on what any circuit of the architecture could
reach; and the **pass-through** rows on the same masks (zeros, the mean training image; each
model's own filled input is its ``input_fidelity``).

Every run is scored on the test split (all 10,000 MNIST test images by default) with the saved
evaluation masks: fidelity, the gain over its own filled input, masked-region PSNR, P(keep) and
ResNet18 accuracy. Writes ``results.json``, ``report.md`` (tables, knob effects and verdicts, each
decided by a paired 95 % interval) and ``reconstructions_*.png`` into ``--out``.
"""

from __future__ import annotations

import functools
import itertools
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import torch

from .. import checkpoint as ckpt
from ..results import StudyResult
from ..runs import writer_lock
from .experiments import (
    ExecutorOptions,
    RunSpec,
    executor_options,
    over_seeds,
    run_dir,
    run_parallel,
    train_or_reuse,
    verdict,
)
from .report import markdown_table, render_template

__all__ = ["GRID", "CEILINGS", "study"]

KNOBS = {
    "objective": ("reset", "postselect"),
    "layers": (1, 2),
    "latent_qubits": (7, 6, 5),
    "decoder": ("tied", "untied"),
    "token": ("shared", "per-patch"),
}
METRICS: tuple[str, ...] = ("fidelity", "input_fidelity", "fidelity_gain", "masked_psnr", "masked_cosine_similarity")
METRICS += ("keep_probability", "accuracy", "input_accuracy")


def _name(options: dict[str, Any]) -> str:
    o = options
    return f"{o['objective']}-L{o['layers']}-k{o['latent_qubits']}-{o['decoder']}-{o['token']}"


GRID = tuple(
    RunSpec(_name(dict(zip(KNOBS, values))), dict(zip(KNOBS, values))) for values in itertools.product(*KNOBS.values())
)
# The ceiling: a general 256 x 256 unitary (exact engine). Batch 128: the matrix exponential costs
# the same at any batch, so larger batches buy more images per second for this bound.
CEILINGS = tuple(
    RunSpec(f"ceiling-{objective}-{decoder}-{token}", dict(objective=objective, decoder=decoder, token=token))
    for objective, decoder, token in (
        ("reset", "tied", "shared"),
        ("postselect", "tied", "shared"),
        ("reset", "tied", "per-patch"),
        ("postselect", "tied", "per-patch"),
        ("reset", "untied", "shared"),
        ("postselect", "untied", "shared"),
    )
)
CEILING_OPTIONS = {"ansatz": "unitary", "latent_qubits": 7, "layers": 1, "batch_size": 128}


def _grid_training(quick: bool, data_dir: str | None, dataset: str = "mnist") -> dict[str, Any]:
    """The options every run of the grid shares (QMAE at 25 %), full or a one-epoch check."""
    base = dict(model="qmae", mask_ratio=0.25, patch_size="8x8", eval_limit=0, data_dir=data_dir, dataset=dataset)
    return {**base, **(dict(epochs=1, limit=1000, batch_size=64) if quick else dict(epochs=3, batch_size=32))}


def study(
    out: str | os.PathLike,
    *,
    seeds: int = 3,
    ceiling_seeds: int = 1,
    data_dir: str | None = None,
    dataset: str = "mnist",
    limit: int | None = None,
    quick: bool = False,
    jobs: int | None = None,
    progress: bool = False,
    executor: ExecutorOptions | str = "local",
    address: str | None = None,
    cpus_per_run: int | None = None,
) -> StudyResult:
    """Train (or reuse) every configuration and write the study; see the module docstring.

    Args:
        out: output directory (runs in ``out/runs``, reused when finished).
        seeds: seeds per grid configuration.
        ceiling_seeds: seeds per ceiling configuration (a bound: the best seed is what counts).
        data_dir: MNIST in torchvision's layout (else ``$QMAE_DATA_DIR`` or the embedded sample).
        dataset: the images (``qmae train --dataset``).
        limit: score on the first ``limit`` test images (default: all).
        quick: one epoch on 1,000 images, the grid's first 4 configurations and one ceiling:
            checks the pipeline, not results.
        jobs: runs trained and scored at once, each in its own process with ``cores // jobs``
            threads (the exact engine's small tensors gain little from threads: on 2 cores two
            single-threaded runs train in the time of one). Results do not depend on it beyond
            floating-point rounding.
        progress: progress bars while training (``jobs=1`` only).
        executor: where the runs train and score: an
            :class:`~qmae_qiskit.studies.experiments.ExecutorOptions` (``jobs`` local processes, or
            Ray tasks); the numbers are the same. The older form, ``"local"`` or ``"ray"`` with
            ``jobs``, ``address`` and ``cpus_per_run`` beside it, is still read.
        address: the Ray cluster to join (older form; default: a local Ray instance for this call).
        cpus_per_run: CPUs (and torch threads) of each Ray task (older form).

    Returns:
        A :class:`~qmae_qiskit.results.StudyResult` (``to_json()``: the ``results.json`` content).

    Raises:
        ValueError: non-positive seeds or jobs, or a bad executor (named).
        RunFailed: runs that failed on Ray (the finished ones are kept for the next call).
        RunLockedError: another ``qmae study`` is writing ``out``.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1 or ceiling_seeds < 1:
        raise ValueError(f"--seeds and --ceiling-seeds must be positive integers, got {seeds!r}, {ceiling_seeds!r}")
    runner = executor_options(executor, jobs=jobs, address=address, cpus_per_run=cpus_per_run)  # before any write
    _check_labelled(dataset, data_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with writer_lock(out):  # one study per output directory
        document = _study(out, seeds, ceiling_seeds, data_dir, dataset, limit, quick, runner, progress)
    return StudyResult.from_json("study", document)


def _check_labelled(dataset: str, data_dir: str | None) -> None:
    """The test split is there and labelled (the study compares classifier accuracy): checked
    before the output directory is made."""
    from ..datasets import load_dataset

    if load_dataset(dataset, "test", root=data_dir).labels is None:
        raise ValueError(f"qmae study compares classifier accuracy: {dataset} is unlabelled; use qmae evaluate")


def _study(
    out: Path,
    seeds: int,
    ceiling_seeds: int,
    data_dir: str | None,
    dataset: str,
    limit: int | None,
    quick: bool,
    runner: ExecutorOptions,
    progress: bool,
) -> dict[str, Any]:
    from ..evaluation import linear_fill_for, passthrough, passthrough_fills
    from ..model import load_model
    from ..runs import versions

    wall = time.perf_counter()
    common = _grid_training(quick, data_dir, dataset)
    grid, ceilings = (GRID[:4], CEILINGS[:1]) if quick else (GRID, CEILINGS)
    plan: list[tuple[RunSpec, int, dict[str, Any]]] = [(spec, seed, {}) for spec in grid for seed in range(seeds)]
    plan += [(spec, seed, CEILING_OPTIONS) for spec in ceilings for seed in range(ceiling_seeds)]
    specs = [RunSpec(spec.name, {**spec.options, **extra}) for spec, _, extra in plan]
    start = time.perf_counter()
    names = [run_dir(out / "runs", spec, seed).name for spec, (_, seed, _) in zip(specs, plan)]
    trained = run_parallel(
        _train_one,
        [(spec, out / "runs", seed, common, progress) for spec, (_, seed, _) in zip(specs, plan)],
        runner,
        names=names,
    )
    train_wall_s = round(time.perf_counter() - start, 1)
    dirs: dict[str, list[Path]] = {}
    timings: dict[str, float] = {}
    for spec, (path, seconds, how) in zip(specs, trained):
        dirs.setdefault(spec.name, []).append(path)
        if how != "reused":
            timings[path.name] = round(seconds, 1)
    train_s = _training_seconds(out, timings)

    first = next(iter(dirs.values()))[0]
    # Built here first, so the classifier is trained and cached before any worker needs it.
    context = (first, data_dir, (limit or 500) if quick else limit, quick, progress)  # --limit wins in --quick too
    test, train_set, classifier, masks = _scoring(*context)
    start = time.perf_counter()
    paths = [(name, path) for name, ps in dirs.items() for path in ps]
    scored = run_parallel(_score_one, [(path, *context) for _, path in paths], runner, names=[p.name for _, p in paths])
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in dirs}
    for (name, path), row in zip(paths, scored):
        row.update(train_s=train_s.get(path.name))
        rows[name].append(row)
    first_model = load_model(first)
    linear = linear_fill_for(train_set.images, first_model, masks)  # the classical anchor (ridge, per position)
    fills = passthrough_fills(first_model, test.images, masks, train_set.images.mean(0), linear)
    pass_rows = {
        name: passthrough(
            test.images, masks, fills[name], labels=test.labels, classifier=classifier, with_ssim=False
        ).to_json()
        for name in ("zeros", "mean_image", "linear_fill")
        if name in fills
    }
    evaluation_s = round(time.perf_counter() - start, 1)

    configs = {spec.name: dict(spec.options) for spec in grid}
    configs.update({spec.name: {**spec.options, **CEILING_OPTIONS} for spec in ceilings})
    result = {
        "configs": configs,
        "rows": rows,
        "summary": {name: over_seeds(r, METRICS) for name, r in rows.items()},
        "passthrough": pass_rows,
        "effects": _effects(rows, configs, seeds),
        "seeds": seeds,
        "ceiling_seeds": ceiling_seeds,
        "test_images": len(test.images),
        "test_source": test.source,
        "quick": quick,
        "timings": {
            "train_s": train_s,
            "train_total_s": round(sum(train_s.values()), 1),
            "train_wall_s": train_wall_s,
            "evaluation_s": evaluation_s,
            "jobs": runner.jobs if runner.kind == "local" else None,
            "executor": runner.kind,
        },
        "versions": versions(),
    }
    result["verdicts"] = _verdicts(result)
    result["timings"]["total_s"] = round(time.perf_counter() - wall, 1)
    ckpt.write_json(out / "results.json", result)
    _figures(out, dirs, test.images, masks, fills, result)
    ckpt.atomic_write(out / "report.md", lambda fh: fh.write(report(result).encode()))
    return result


def _train_one(spec: RunSpec, runs: Path, seed: int, common: dict[str, Any], progress: bool) -> tuple[Path, float, str]:
    return train_or_reuse(
        spec, runs, seed, common=common, progress=progress and multiprocessing.parent_process() is None
    )


@functools.lru_cache(maxsize=2)
def _scoring(first: Path, data_dir: str | None, limit: int | None, quick: bool, progress: bool) -> tuple:
    """What every run is scored with: test images, training images, the classifier, the masks
    (once per process)."""
    from ..classifier import ClassifierOptions, cached_classifier
    from ..model import load_model
    from ..runs import data_for_run, saved_evaluation_masks

    test = data_for_run(first, split="test", data_dir=data_dir, limit=limit)
    train_set = data_for_run(first, split="train", data_dir=data_dir, limit=1000 if quick else None, check=False)
    options = ClassifierOptions(epochs=3, batch_size=64) if quick else ClassifierOptions()
    classifier, _ = cached_classifier(train_set, options, progress=progress)
    masks = saved_evaluation_masks(first, load_model(first), len(test.images))
    return test, train_set, classifier, masks


def _score_one(
    path: Path, first: Path, data_dir: str | None, limit: int | None, quick: bool, progress: bool
) -> dict[str, Any]:
    from ..evaluation import evaluate_images
    from ..model import load_model

    test, _, classifier, masks = _scoring(first, data_dir, limit, quick, progress)
    model = load_model(path)
    row = evaluate_images(
        model, test.images, masks, labels=test.labels, classifier=classifier, with_ssim=False, extras=False
    ).to_json()
    row.update(run=path.name, parameters=model.num_parameters)
    return row


def _training_seconds(out: Path, now: dict[str, float]) -> dict[str, float]:
    """Training seconds per run: measured now, or kept from the last study that trained it."""
    try:
        before = json.loads((out / "results.json").read_text())["timings"]["train_s"]
    except (OSError, KeyError, json.JSONDecodeError):
        before = {}
    return {**before, **now}


def _effects(
    rows: dict[str, list[dict[str, Any]]], configs: dict[str, dict[str, Any]], seeds: int
) -> list[dict[str, Any]]:
    """Each knob's effect on each metric: pairs of grid configurations that differ in that knob
    alone, the difference per pair and seed, its mean and paired 95 % interval."""
    from ..metrics import paired_interval

    grid = {name: c for name, c in configs.items() if "ansatz" not in c}
    out = []
    for knob, values in KNOBS.items():
        for value in values[1:]:
            for key in ("fidelity", "fidelity_gain", "masked_psnr", "accuracy"):
                a, b = [], []
                for name, c in grid.items():
                    if c[knob] != values[0]:
                        continue
                    other = _name({**c, knob: value})
                    if other not in rows or name not in rows:
                        continue
                    for x, y in zip(rows[other], rows[name]):  # same seed
                        a.append(x[key])
                        b.append(y[key])
                if len(a) < 2:
                    continue
                i = paired_interval(a, b)
                out.append({"knob": knob, "from": values[0], "to": value, "metric": key, **i._asdict()})
    return out


def _best(result: dict[str, Any], key: str, *, grid_only: bool = True) -> str:
    names = [n for n, c in result["configs"].items() if not (grid_only and "ansatz" in c)]
    return max(names, key=lambda n: result["summary"][n][key]["mean"])


def _verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The study's questions, each decided by a paired 95 % interval over seeds (against the
    fills, which have no seed, over seeds too), or called undecided."""
    rows, fill = result["rows"], result["passthrough"]["mean_image"]
    out = []

    def add(claim: str, a: list[float], b: list[float], unit: str = "") -> None:
        if len(a) < 2:
            one_seed: dict[str, Any] = {
                "claim": claim,
                "sentence": f"{claim}: one seed, no interval (run with --seeds 3)",
            }
            out.append({**one_seed, "holds": None})
            return
        v = verdict(claim, a, b, unit=unit)
        out.append({"claim": claim, "sentence": v.sentence(), "holds": v.holds, **v.interval._asdict()})

    best_psnr = _best(result, "masked_psnr")
    best_acc = _best(result, "accuracy")
    best_gain = _best(result, "fidelity_gain")
    r = rows[best_psnr]
    add(
        f"The best circuit on masked PSNR ({best_psnr}) beats the mean-image fill there",
        [x["masked_psnr"] for x in r],
        [fill["masked_psnr"]] * len(r),
        " dB",
    )
    r = rows[best_acc]
    add(
        f"The best circuit on accuracy ({best_acc}) beats its own filled input's accuracy",
        [100 * x["accuracy"] for x in r],
        [100 * x["input_accuracy"] for x in r],
        " pp",
    )
    add(
        f"The best circuit on accuracy ({best_acc}) beats the mean-image fill's accuracy",
        [100 * x["accuracy"] for x in r],
        [100 * fill["accuracy"]] * len(r),
        " pp",
    )
    r = rows[best_gain]
    add(
        f"The best circuit on fidelity gain ({best_gain}) beats its own filled input",
        [x["fidelity"] for x in r],
        [x["input_fidelity"] for x in r],
    )
    add(
        f"The best circuit on fidelity gain ({best_gain}) beats the mean-image fill's fidelity",
        [x["fidelity"] for x in r],
        [fill["fidelity"]] * len(r),
    )
    return out


def _fmt(entry: dict[str, Any] | None, *, pct: bool = False, digits: int = 3, signed: bool = False) -> str:
    if not entry:
        return "–"
    scale = 100 if pct else 1
    spread = entry.get("std", entry.get("stderr"))
    value = f"{scale * entry['mean']:{'+' if signed else ''}.{2 if pct else digits}f}"
    return (
        value + (f" ± {scale * spread:.{2 if pct else digits}f}" if spread is not None else "") + (" %" if pct else "")
    )


TABLE_HEADER = [
    "configuration",
    "fidelity",
    "gain over its input",
    "masked PSNR (dB)",
    "P(keep)",
    "accuracy",
    "input accuracy",
    "weights",
    "train (s)",
]


def _table_row(label: str, s: dict[str, Any], row: dict[str, Any]) -> list[str]:
    return [
        label,
        _fmt(s.get("fidelity")),
        _fmt(s.get("fidelity_gain"), signed=True),
        _fmt(s.get("masked_psnr"), digits=2),
        _fmt(s.get("keep_probability")) if "keep_probability" in row else "–",
        _fmt(s.get("accuracy"), pct=True),
        _fmt(s.get("input_accuracy"), pct=True),
        f"{row['parameters']:,}",
        f"{row['train_s']:.0f}" if row.get("train_s") is not None else "–",
    ]


def report(result: dict[str, Any]) -> str:
    """``report.md``: ``templates/study_report.md`` with every configuration, the ceilings, the
    pass-through rows, the knobs' effects and the verdicts."""
    passes = result["passthrough"]
    pass_rows = [
        [f"pass-through: {name.replace('_', ' ')}", f"{r['fidelity']:.3f} ± {r['fidelity_stderr']:.3f}", "–",
         f"{r['masked_psnr']:.2f} ± {r['masked_psnr_stderr']:.2f}", "–", f"{100 * r['accuracy']:.2f} %", "–", "–", "–"]
        for name, r in passes.items()
    ]  # fmt: skip
    ceilings = [
        _table_row(
            f"**ceiling** {name.removeprefix('ceiling-')} (general unitary)",
            result["summary"][name],
            result["rows"][name][0],
        )
        for name, c in result["configs"].items()
        if "ansatz" in c and name in result["rows"]
    ]
    tables = []
    for objective in KNOBS["objective"]:
        names = [n for n, c in result["configs"].items() if c.get("objective") == objective and "ansatz" not in c]
        names = [n for n in names if n in result["rows"]]
        if names:
            body = [_table_row(n, result["summary"][n], result["rows"][n][0]) for n in names]
            body += [row for row in ceilings if f" {objective}-" in row[0]] + pass_rows
            tables.append(f"## Objective: {objective}\n\n{markdown_table(TABLE_HEADER, body)}\n\n")

    def effect_row(e: dict[str, Any]) -> list[str]:
        word = "undecided" if e["low"] <= 0 <= e["high"] else ("raises it" if e["low"] > 0 else "lowers it")
        interval = f"[{e['low']:+.4f}, {e['high']:+.4f}]"
        return [e["knob"], f"{e['from']} -> {e['to']}", e["metric"], f"{e['mean']:+.4f}", interval, str(e["samples"]),
                word]  # fmt: skip

    effects_header = ["knob", "change", "metric", "mean difference", "95 % interval", "pairs", "verdict"]
    t = result["timings"]
    quick = "**Quick run**: one epoch on 1,000 images, a few configurations. A smoke test, not results.\n\n"
    return render_template(
        "study_report.md",
        {
            "quick_note": quick if result["quick"] else "",
            "test_images": result["test_images"],
            "test_source": result["test_source"],
            "seeds": result["seeds"],
            "ceiling_seeds": result["ceiling_seeds"],
            "tables": "".join(tables),
            "effects": markdown_table(effects_header, [effect_row(e) for e in result["effects"]]),
            "verdicts": "\n".join(f"- {v['sentence']}." for v in result["verdicts"]),
            "train_min": f"{t['train_total_s'] / 60:.1f}",
            "runs": len(t["train_s"]),
            "jobs": t.get("jobs", 1),
            "train_wall_min": f"{t.get('train_wall_s', 0) / 60:.1f}",
            "evaluation_min": f"{t['evaluation_s'] / 60:.1f}",
            "total_min": f"{t['total_s'] / 60:.1f}",
        },
    )


def _figures(
    out: Path,
    dirs: dict[str, list[Path]],
    images: torch.Tensor,
    masks: torch.Tensor,
    fills: dict[str, torch.Tensor],
    result: dict[str, Any],
) -> None:
    """Reconstructions of the first 6 test images by every configuration (seed 0), per objective."""
    from ..figures import save_image_grid
    from ..metrics import scale_reconstruction
    from ..model import load_model

    idx = torch.arange(6)
    x, m = images[idx], masks[idx]
    for objective in KNOBS["objective"]:
        names = [n for n, c in result["configs"].items() if c.get("objective") == objective and n in dirs]
        if not names:
            continue
        rows = [("masked", x * ~m), ("mean-image fill", fills["mean_image"][idx])]
        for name in names:
            with torch.no_grad():
                rows.append(
                    (
                        name.replace(f"{objective}-", "").replace("ceiling-", "ceiling "),
                        scale_reconstruction(load_model(dirs[name][0]).reconstruct(x, m), x, m),
                    )
                )
        rows.append(("original", x))
        save_image_grid(rows, out / f"reconstructions_{objective}.png")
