"""``qmae reproduce``: re-run the paper's evaluation section, put our numbers next to its own, and
ask of every model what a masked autoencoder is for: does it fill the masked patch in?

Trains (or reuses) QMAE and QAE at 25 % and QMAE at 12.5 % and 50 % with the paper's loss, the
same with the compression ("trash") term, and the post-selected QMAE and QAE; for ``seeds`` seeds
each. Scores them on the test split with shared saved masks, next to the pass-through rows (the
filled input itself: zeros, the learned token, the mean training image) on the same masks, trains
(or reuses) the ResNet18 classifier, and writes ``inpainting.md`` (the table that leads),
``table1.{md,csv,json}``, ``fig6.png`` to ``fig8.png``, ``inpainting.png`` and ``REPORT.md``.
Every verdict in the report is stated only where a paired 95 % interval excludes zero.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..results import StudyResult
from ..runs import writer_lock
from .experiments import (
    ExecutorOptions,
    RunSpec,
    Verdict,
    compare,
    executor_options,
    over_seeds,
    run_dir,
    run_parallel,
    train_or_reuse,
    verdict,
)
from .report import markdown_table, render_template

__all__ = ["PAPER", "RUNS", "reproduce"]

# Table 1 of the paper (fidelity, cosine similarity, SSIM, accuracy), 10,000 test images, 25 % mask.
PAPER = {
    "qmae-25": {"fidelity": 0.734, "cosine_similarity": 0.843, "ssim": 0.446, "accuracy": 0.6506},
    "qae-25": {"fidelity": 0.600, "cosine_similarity": 0.799, "ssim": 0.445, "accuracy": 0.5220},
}
PAPER_CLEAN_ACCURACY = 0.9933

# Compression term weight for the "+ trash term" rows: chosen from {0, 1, 3} on the last 2,000
# training images, held out from the autoencoder (ResNet18 accuracy 60.4 / 65.9 / 71.4 %), never on the test split.
TRASH_WEIGHT = 3.0

_25 = {"mask_ratio": 0.25, "patch_size": "8x8"}
RUNS = (
    RunSpec("qmae-25", {"model": "qmae", **_25}, "QMAE 25 %"),
    RunSpec("qae-25", {"model": "qae", **_25}, "QAE 25 %"),
    RunSpec("qmae-12.5", {"model": "qmae", "mask_ratio": 0.125, "patch_size": "8x4"}, "QMAE 12.5 %"),
    RunSpec("qmae-50", {"model": "qmae", "mask_ratio": 0.5, "patch_size": "8x8"}, "QMAE 50 %"),
    RunSpec(
        "qmae-25-trash",
        {"model": "qmae", "trash_weight": TRASH_WEIGHT, **_25},
        f"QMAE 25 %, + trash term (weight {TRASH_WEIGHT:g}; not the paper's loss)",
    ),
    RunSpec(
        "qae-25-trash",
        {"model": "qae", "trash_weight": TRASH_WEIGHT, **_25},
        f"QAE 25 %, + trash term (weight {TRASH_WEIGHT:g}; not the paper's loss)",
    ),
    RunSpec(
        "qmae-25-postselect",
        {"model": "qmae", "objective": "postselect", **_25},
        "QMAE 25 %, post-selected (trash measured, kept shots; not the paper's procedure)",
    ),
    RunSpec(
        "qae-25-postselect",
        {"model": "qae", "objective": "postselect", **_25},
        "QAE 25 %, post-selected (not the paper's procedure)",
    ),
)
TABLE1 = ("fidelity", "cosine_similarity", "ssim", "ssim_torchmetrics", "psnr", "accuracy")
INPAINTING = ("fidelity", "input_fidelity", "fidelity_gain", "masked_psnr", "masked_cosine_similarity")
SUMMARY_KEYS = tuple(dict.fromkeys(TABLE1 + INPAINTING + ("keep_probability", "oracle_cosine_similarity")))


def _paper_training(quick: bool, data_dir: str | None, dataset: str = "mnist") -> dict[str, Any]:
    """The training options every reproduced run shares: the paper's recipe, or a one-epoch check."""
    if quick:
        return dict(epochs=1, limit=2000, batch_size=64, eval_limit=0, data_dir=data_dir, dataset=dataset)
    return dict(epochs=3, batch_size=32, eval_limit=0, data_dir=data_dir, dataset=dataset)


def _without_per_image(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "per_image"}


def reproduce(
    out: str | os.PathLike,
    *,
    quick: bool = False,
    data_dir: str | None = None,
    progress: bool = True,
    seeds: int = 1,
    dataset: str = "mnist",
    jobs: int | None = None,
    executor: ExecutorOptions | str = "local",
    address: str | None = None,
    cpus_per_run: int | None = None,
) -> StudyResult:
    """Run the whole evaluation section; see the module docstring.

    Args:
        out: output directory (the runs go to ``out/runs``; finished ones are reused).
        quick: small subsets and one epoch: checks the pipeline in minutes, not results.
        data_dir: MNIST in torchvision's layout (else ``$QMAE_DATA_DIR`` or the embedded sample).
        progress: progress bars.
        seeds: seeds per configuration; every trained row is then a mean with its spread over seeds.
        dataset: the images (``qmae train --dataset``); the paper's rows are MNIST's.
        jobs, executor, address, cpus_per_run: where the runs train: ``jobs`` local processes, or
            Ray tasks (``executor="ray"``), as for :func:`~qmae_qiskit.studies.study.study`.

    Returns:
        A :class:`~qmae_qiskit.results.StudyResult` (``to_json()``: the ``table1.json`` content).

    Raises:
        ValueError: ``seeds < 1``, or a bad executor (named).
        RunFailed: runs that failed on Ray (the finished ones are kept for the next call).
        RunLockedError: another ``qmae reproduce`` is writing ``out``.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds must be a positive integer, got {seeds!r}")
    runner = executor_options(executor, jobs=jobs, address=address, cpus_per_run=cpus_per_run)  # before any write
    from ..datasets import load_dataset

    if load_dataset(dataset, "test", root=data_dir).labels is None:
        raise ValueError(f"qmae reproduce compares classifier accuracy: {dataset} is unlabelled; use qmae evaluate")
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    with writer_lock(out):  # one reproduce per output directory
        document = _reproduce(
            out, quick=quick, data_dir=data_dir, progress=progress, seeds=seeds, dataset=dataset, runner=runner
        )
    return StudyResult.from_json("reproduce", document)


def _train_one(spec: RunSpec, runs: Path, seed: int, common: dict[str, Any], progress: bool) -> tuple[Path, float, str]:
    return train_or_reuse(spec, runs, seed, common=common, progress=progress)


def _reproduce(
    out: Path, *, quick: bool, data_dir: str | None, progress: bool, seeds: int, dataset: str, runner: ExecutorOptions
) -> dict[str, Any]:
    from ..classifier import ClassifierOptions, accuracy, cached_classifier, labels_of
    from ..evaluation import evaluate_images, linear_fill_for, passthrough, passthrough_fills
    from ..model import load_model
    from ..runs import data_for_run, saved_evaluation_masks, versions

    wall = time.perf_counter()
    runs = out / "runs"
    previous = _previous_timings(out)
    timings: dict[str, Any] = {}
    dirs: dict[str, list[Path]] = {spec.name: [] for spec in RUNS}
    plan = [(spec, seed) for spec in RUNS for seed in range(seeds)]
    serial = runner.kind == "local" and runner.jobs == 1
    common = _paper_training(quick, data_dir, dataset)
    trained = run_parallel(
        _train_one,
        [(spec, runs, seed, common, progress and serial) for spec, seed in plan],
        runner,
        names=[run_dir(runs, spec, seed).name for spec, seed in plan],
    )
    for (spec, _), (path, seconds, how) in zip(plan, trained):
        dirs[spec.name].append(path)
        timings[path.name] = _timing(previous.get(path.name), seconds, how)

    first = dirs["qmae-25"][0]
    test = data_for_run(first, split="test", data_dir=data_dir, limit=500 if quick else None)
    train_set = data_for_run(first, split="train", data_dir=data_dir, limit=2000 if quick else None, check=False)
    start = time.perf_counter()
    options = ClassifierOptions(epochs=3, batch_size=64) if quick else ClassifierOptions()
    classifier, classifier_path = cached_classifier(train_set, options, progress=progress)
    timings["classifier"] = {"s": round(time.perf_counter() - start, 1), "path": classifier_path.name}
    sidecar = classifier_path.with_suffix(".json")
    if sidecar.is_file():  # how long it took to train, when it was trained
        timings["classifier"]["trained_s"] = round(json.loads(sidecar.read_text()).get("seconds", 0.0), 1)

    masks = {
        name: saved_evaluation_masks(paths[0], load_model(paths[0]), len(test.images)) for name, paths in dirs.items()
    }
    for name in ("qae-25", "qmae-25-trash", "qae-25-trash", "qmae-25-postselect", "qae-25-postselect"):
        if not torch.equal(masks["qmae-25"], masks[name]):
            raise RuntimeError(
                f"the 25 % runs' evaluation masks differ ({name}); delete their eval_masks.npz and run again"
            )

    start = time.perf_counter()
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, paths in dirs.items():
        rows[name] = [
            evaluate_images(
                load_model(p), test.images, masks[name], labels=test.labels, classifier=classifier, per_image=True
            ).to_row()
            for p in paths
        ]
    m25 = masks["qmae-25"]
    mean_image = train_set.images.mean(0)
    first_model = load_model(first)
    linear = linear_fill_for(train_set.images, first_model, m25)  # the classical anchor (ridge, per position)
    fills = passthrough_fills(first_model, test.images, m25, mean_image, linear)
    pass_rows = {
        name: passthrough(test.images, m25, fill, labels=test.labels, classifier=classifier, per_image=True).to_row()
        for name, fill in fills.items()
    }
    timings["evaluation_s"] = round(time.perf_counter() - start, 1)

    verdicts = _verdicts(rows, pass_rows)
    result = {
        "paper": PAPER,
        "paper_clean_accuracy": PAPER_CLEAN_ACCURACY,
        "ours": {name: _without_per_image(r[0]) for name, r in rows.items()},  # seed 0, as before seeds existed
        "seeds": {name: [_without_per_image(x) for x in r] for name, r in rows.items()} if seeds > 1 else {},
        "summary": {name: over_seeds(r, SUMMARY_KEYS) for name, r in rows.items()},
        "passthrough": {name: _without_per_image(r) for name, r in pass_rows.items()},
        "baselines": {  # the inputs the classifier sees without any autoencoder, on QMAE-25's masks
            "clean": {"accuracy": accuracy(classifier, test.images, labels_of(test))},
            "masked, zeros": _baseline(pass_rows["zeros"]),
            "masked, learned token": _baseline(pass_rows["token"]),
            "masked, mean training image": _baseline(pass_rows["mean_image"]),
        },
        "verdicts": [
            {"claim": v.claim, "sentence": v.sentence(), "holds": v.holds, **v.interval._asdict()} for v in verdicts
        ],
        "seeds_per_configuration": seeds,
        "postselect_keep_weight": ckpt.load_config(dirs["qmae-25-postselect"][0])["options"].get("keep_weight"),
        "timings": timings,
        "test_images": len(test.images),
        "test_source": test.source,
        "quick": quick,
        "versions": versions(),
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
    }
    _write_tables(out, result)
    _figures(out, {name: load_model(paths[0]) for name, paths in dirs.items()}, test.images, masks, fills["mean_image"])
    result["timings"]["total_s"] = round(time.perf_counter() - wall, 1)
    ckpt.write_json(out / "table1.json", result)
    _report(out, result, quick=quick, data_dir=data_dir)
    return result


def _previous_timings(out: Path) -> dict[str, Any]:
    """A re-run reuses trained runs: keep their original training times."""
    try:
        return json.loads((out / "table1.json").read_text()).get("timings", {})
    except (OSError, json.JSONDecodeError):
        return {}


def _timing(previous: Any, seconds: float, how: str) -> dict[str, Any]:
    if how == "reused" and isinstance(previous, dict) and "train_s" in previous:
        first = previous["how"].split("; ")[-1].split(" in ")[0]
        return {"train_s": previous["train_s"], "how": f"reused; {first} in {previous['train_s']} s"}
    return {"train_s": round(seconds, 1), "how": how}


def _baseline(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "accuracy": (row["accuracy"], row["accuracy_stderr"]),
        "fidelity": (row["fidelity"], row["fidelity_stderr"]),
    }


def _verdicts(rows: dict[str, list[dict[str, Any]]], pass_rows: dict[str, dict[str, Any]]) -> list[Verdict]:
    """The claims the report makes, each decided by a paired 95 % interval (or called undecided)."""
    q, a, ps = rows["qmae-25"], rows["qae-25"], rows["qmae-25-postselect"]
    mean_fill = pass_rows["mean_image"]

    def against_fill(
        claim: str, key: str, model_rows: list[dict[str, Any]], unit: str = "", scale: float = 1.0
    ) -> Verdict:
        """The model against the mean-image fill: per image for one seed, else the seeds' means
        against the fill's (one number: the fill has no seed)."""
        if len(model_rows) > 1:
            return verdict(
                claim, [scale * r[key] for r in model_rows], [scale * mean_fill[key]] * len(model_rows), unit=unit
            )
        return compare(claim, key, model_rows, [mean_fill], unit=unit, scale=scale)

    def own_gain(claim: str, model_rows: list[dict[str, Any]]) -> Verdict:
        if len(model_rows) > 1:
            return verdict(claim, [r["fidelity"] for r in model_rows], [r["input_fidelity"] for r in model_rows])
        per = model_rows[0]["per_image"]
        return verdict(claim, per["fidelity"], per["input_fidelity"], paired_over="images (one seed)")

    return [
        compare("QMAE beats QAE on fidelity (reset, the paper's loss)", "fidelity", q, a),
        compare(
            "QMAE beats QAE on ResNet18 accuracy (reset, the paper's loss)", "accuracy", q, a, unit=" pp", scale=100
        ),
        own_gain("QMAE's output beats its own filled input on fidelity (reset)", q),
        own_gain("Post-selected QMAE's output beats its own filled input on fidelity", ps),
        against_fill("Post-selected QMAE beats the mean-image fill on fidelity", "fidelity", ps),
        compare("Post-selected QMAE beats reset QMAE on masked-region PSNR", "masked_psnr", ps, q, unit=" dB"),
        against_fill(
            "Post-selected QMAE beats the mean-image fill on masked-region PSNR", "masked_psnr", ps, unit=" dB"
        ),
        against_fill("Reset QMAE beats the mean-image fill on masked-region PSNR", "masked_psnr", q, unit=" dB"),
        against_fill("Post-selected QMAE beats the mean-image fill on ResNet18 accuracy", "accuracy", ps, " pp", 100),
        compare("Post-selected QMAE beats reset QMAE on ResNet18 accuracy", "accuracy", ps, q, unit=" pp", scale=100),
    ]


def _fmt(value: Any, spread: Any = None, pct: bool = False, digits: int = 3) -> str:
    if value is None:
        return "–"
    if pct:
        return f"{100 * value:.2f} %" + (f" ± {100 * spread:.2f}" if spread is not None else "")
    return f"{value:.{digits}f}" + (f" ± {spread:.{digits}f}" if spread is not None else "")


def _cell(summary: dict[str, Any], key: str, *, pct: bool = False, digits: int = 3) -> str:
    """``mean ± std over seeds`` (or ``± stderr over images`` for one seed)."""
    entry = summary.get(key)
    if entry is None:
        return "–"
    return _fmt(entry["mean"], entry.get("std", entry.get("stderr")), pct=pct, digits=digits)


def _pass_cell(row: dict[str, Any], key: str, *, pct: bool = False, digits: int = 3) -> str:
    return _fmt(row[key], row[f"{key}_stderr"], pct=pct, digits=digits) if key in row else "–"


def _spread_note(result: dict[str, Any]) -> str:
    n = result["seeds_per_configuration"]
    if n > 1:
        return (
            f"Trained rows: mean ± standard deviation over {n} seeds; pass-through rows: ± standard error over images."
        )
    return (
        "± is the standard error over the test images (one seed per configuration: `--seeds N` adds the seeds' spread)."
    )


INPAINTING_HEADER = [
    "",
    "fidelity",
    "input fidelity (pass-through)",
    "gain",
    "masked PSNR (dB)",
    "masked cosine sim.",
    "P(keep)",
    "ResNet18 accuracy",
]


def _inpainting_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for spec in RUNS:
        if spec.options.get("mask_ratio") != 0.25:
            continue
        s = result["summary"][spec.name]
        rows.append(
            [spec.label, _cell(s, "fidelity"), _cell(s, "input_fidelity"), _cell(s, "fidelity_gain")]
            + [_cell(s, "masked_psnr", digits=2), _cell(s, "masked_cosine_similarity"), _cell(s, "keep_probability")]
            + [_cell(s, "accuracy", pct=True)]
        )
    names = {"zeros": "pass-through: zeros", "token": "pass-through: QMAE 25 %'s learned token", "mean_image": ""}
    names["mean_image"] = "pass-through: mean training image (classical fill)"
    names["linear_fill"] = "pass-through: linear fill (ridge from the visible pixels, per position)"
    for name, row in result["passthrough"].items():
        rows.append(
            [names[name], _pass_cell(row, "fidelity"), "–", "–", _pass_cell(row, "masked_psnr", digits=2)]
            + [_pass_cell(row, "masked_cosine_similarity"), "–", _pass_cell(row, "accuracy", pct=True)]
        )
    return rows


TABLE1_HEADER = [
    "",
    "fidelity",
    "cosine sim.",
    "SSIM (skimage, win 7)",
    "SSIM (torchmetrics defaults)",
    "PSNR (dB)",
    "cosine sim. (oracle scale)",
    "ResNet18 accuracy",
]


def _table1_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name in ("qmae-25", "qae-25"):
        p = PAPER[name]
        label = f"paper {name.split('-')[0].upper()} 25 %"
        rows.append(
            [label, _fmt(p["fidelity"]), _fmt(p["cosine_similarity"]), _fmt(p["ssim"]), "–", "–", "–"]
            + [_fmt(p["accuracy"], pct=True)]
        )
    for spec in RUNS:
        s = result["summary"][spec.name]
        rows.append(
            [f"ours {spec.label}"]
            + [_cell(s, c, digits=2 if c == "psnr" else 3) for c in TABLE1[:5]]
            + [_cell(s, "oracle_cosine_similarity"), _cell(s, "accuracy", pct=True)]
        )
    for name in ("qmae-25", "qae-25"):  # inference-only change of the reset-trained models
        r = result["ours"][name]
        label = f"ours {name.split('-')[0].upper()} 25 %, reset-trained, trash post-selected at inference"
        rows.append(
            [label, _fmt(r["postselected_fidelity"], r["postselected_fidelity_stderr"])]
            + [_fmt(r[f"postselected_{c}"], r[f"postselected_{c}_stderr"]) for c in ("cosine_similarity", "ssim")]
            + ["–", _fmt(r["postselected_psnr"], r["postselected_psnr_stderr"], digits=2), "–"]
            + [_fmt(r["postselected_accuracy"], r["postselected_accuracy_stderr"], pct=True)]
        )
    for name, b in result["baselines"].items():
        fid = b.get("fidelity")
        rows.append(
            [
                f"input: {name}",
                _fmt(*fid) if fid else "–",
                "–",
                "–",
                "–",
                "–",
                "–",
                _fmt(b["accuracy"][0], b["accuracy"][1], pct=True),
            ]
        )
    return rows


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    return markdown_table(header, rows) + "\n"


def _write_tables(out: Path, result: dict[str, Any]) -> None:
    ckpt.atomic_write(out / "table1.md", lambda fh: fh.write(_markdown(TABLE1_HEADER, _table1_rows(result)).encode()))
    inpainting = _markdown(INPAINTING_HEADER, _inpainting_rows(result))
    ckpt.atomic_write(out / "inpainting.md", lambda fh: fh.write(inpainting.encode()))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = tuple(dict.fromkeys(TABLE1 + INPAINTING + ("keep_probability",)))
    writer.writerow(["row", "seeds"] + [c for col in columns for c in (col, col + "_spread")])
    for name, summary in result["summary"].items():
        cells = [
            (summary.get(c, {}).get("mean"), summary.get(c, {}).get("std", summary.get(c, {}).get("stderr")))
            for c in columns
        ]
        writer.writerow([name, result["seeds_per_configuration"]] + [v for pair in cells for v in pair])
    for name, row in result["passthrough"].items():
        writer.writerow(
            [f"passthrough {name}", ""] + [v for c in columns for v in (row.get(c), row.get(f"{c}_stderr"))]
        )
    for name, p in PAPER.items():
        writer.writerow([f"paper {name}", ""] + [v for c in columns for v in (p.get(c), None)])
    ckpt.atomic_write(out / "table1.csv", lambda fh: fh.write(buffer.getvalue().encode()))


def _figures(
    out: Path, models: dict[str, Any], images: torch.Tensor, masks: dict[str, torch.Tensor], mean_fill: torch.Tensor
) -> None:
    from ..figures import new_figure, save_figure, save_image_grid
    from ..metrics import scale_reconstruction

    idx = torch.arange(5)
    x = images[idx]

    def recon(name: str, postselect: bool | None = None) -> torch.Tensor:
        m = masks[name][idx]
        with torch.no_grad():
            return scale_reconstruction(models[name].reconstruct(x, m, postselect=postselect), x, m)

    m25 = masks["qmae-25"][idx]
    save_image_grid(
        [
            ("masked input", x * ~m25),
            ("QMAE 25 %", recon("qmae-25")),
            ("QAE 25 %", recon("qae-25")),
            ("QMAE 25 %\n+ trash term", recon("qmae-25-trash")),
            ("QMAE 25 %\npost-selected", recon("qmae-25-postselect")),
            ("original", x),
        ],
        out / "fig6.png",
    )
    save_image_grid(
        [(f"QMAE {r}", recon(f"qmae-{r}")) for r in ("12.5", "25", "50")] + [("original", x)], out / "fig7.png"
    )
    save_image_grid(
        [
            ("filled input\n(QMAE token)", models["qmae-25"].fill(x, m25).detach().clamp(0, 1)),
            ("QMAE 25 %\n(reset)", recon("qmae-25")),
            ("post-selected\nQMAE 25 %", recon("qmae-25-postselect")),
            ("mean-image\nfill", mean_fill[idx]),
            ("original", x),
        ],
        out / "inpainting.png",
    )
    fig, ax = new_figure(figsize=(6, 3.2))
    for name in ("qmae-25", "qae-25"):
        lines = (out / "runs" / name / ckpt.METRICS).read_text().splitlines()
        loss = np.array([json.loads(line)["loss"] for line in lines if line.strip()])
        window = max(1, len(loss) // 50)
        ax.plot(np.convolve(loss, np.ones(window) / window, mode="valid"), label=name.upper().replace("-25", " 25 %"))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("1 - fidelity (training batch)")
    ax.legend()
    ax.set_title("training loss (cf. the paper's Fig. 8)")
    save_figure(fig, out / "fig8.png")


def _report(out: Path, result: dict[str, Any], *, quick: bool, data_dir: str | None) -> None:
    """REPORT.md: ``templates/reproduce_report.md`` filled with this run's numbers."""
    summary, base, passes, ours = result["summary"], result["baselines"], result["passthrough"], result["ours"]
    q, a, ps = summary["qmae-25"], summary["qae-25"], summary["qmae-25-postselect"]
    qt, at = summary["qmae-25-trash"], summary["qae-25-trash"]
    labels = {"fidelity": "fidelity", "cosine_similarity": "cosine similarity", "ssim": "SSIM"}
    labels["accuracy"] = "ResNet18 accuracy"
    reproduced = [
        f"- **{label}**: our QMAE {q[key]['mean']:.3f} "
        f"{'beats' if q[key]['mean'] > PAPER['qmae-25'][key] else 'does not reach'} the paper's "
        f"{PAPER['qmae-25'][key]:.3f} (QAE: ours {a[key]['mean']:.3f}, the paper's {PAPER['qae-25'][key]:.3f})."
        for key, label in labels.items()
    ]
    timings = result["timings"]
    walls = (f"{k} {v['train_s']} ({v['how']})" for k, v in timings.items() if isinstance(v, dict) and "train_s" in v)
    command = f"qmae reproduce --out {out}{' --quick' if quick else ''}{' --data-dir ' + data_dir if data_dir else ''}"
    pct = lambda x: f"{100 * x:.2f}"  # noqa: E731
    values = {
        "quick_note": "**Quick run** (small subsets, one epoch): a smoke test of the pipeline, not results.\n\n"
        if quick
        else "",
        "test_images": result["test_images"],
        "test_source": result["test_source"],
        "spread_note": _spread_note(result),
        "inpainting_table": (out / "inpainting.md").read_text(),
        "verdicts": "\n".join(f"- {v['sentence']}." for v in result["verdicts"]),
        "reset_gain": f"{q['fidelity_gain']['mean']:+.3f}",
        "ps_fidelity": f"{ps['fidelity']['mean']:.3f}",
        "ps_kept_pct": f"{100 * ps['keep_probability']['mean']:.0f}",
        "ps_kept_pct1": f"{100 * ps['keep_probability']['mean']:.1f}",
        "ps_gain": f"{ps['fidelity_gain']['mean']:+.3f}",
        "ps_masked_psnr": f"{ps['masked_psnr']['mean']:.2f}",
        "ps_accuracy": pct(ps["accuracy"]["mean"]),
        "mean_image_fidelity": f"{passes['mean_image']['fidelity']:.3f}",
        "mean_image_masked_psnr": f"{passes['mean_image']['masked_psnr']:.2f}",
        "table1": (out / "table1.md").read_text(),
        "reproduced": "\n".join(reproduced),
        "trash_weight": f"{TRASH_WEIGHT:g}",
        "trash_qmae_fidelity": f"{qt['fidelity']['mean']:.3f}",
        "trash_qmae_accuracy": pct(qt["accuracy"]["mean"]),
        "trash_qae_fidelity": f"{at['fidelity']['mean']:.3f}",
        "trash_qae_accuracy": pct(at["accuracy"]["mean"]),
        "keep_weight": f"{result['postselect_keep_weight']:g}",
        "qmae_ps_fidelity": f"{ours['qmae-25']['postselected_fidelity']:.3f}",
        "qmae_ps_accuracy": pct(ours["qmae-25"]["postselected_accuracy"]),
        "qae_ps_fidelity": f"{ours['qae-25']['postselected_fidelity']:.3f}",
        "qae_ps_accuracy": pct(ours["qae-25"]["postselected_accuracy"]),
        "token_fidelity": f"{base['masked, learned token']['fidelity'][0]:.3f}",
        "zeros_fidelity": f"{base['masked, zeros']['fidelity'][0]:.3f}",
        "mean_fidelity": f"{base['masked, mean training image']['fidelity'][0]:.3f}",
        "clean_accuracy": pct(base["clean"]["accuracy"][0]),
        "paper_clean_accuracy": pct(PAPER_CLEAN_ACCURACY),
        "zeros_accuracy": pct(base["masked, zeros"]["accuracy"][0]),
        "token_accuracy": pct(base["masked, learned token"]["accuracy"][0]),
        "mean_accuracy": pct(base["masked, mean training image"]["accuracy"][0]),
        "qmae_ssim": f"{q['ssim']['mean']:.3f}",
        "qae_ssim": f"{a['ssim']['mean']:.3f}",
        "qmae_ssim_tm": f"{q['ssim_torchmetrics']['mean']:.3f}",
        "qae_ssim_tm": f"{a['ssim_torchmetrics']['mean']:.3f}",
        "command": f"{command} --seeds {result['seeds_per_configuration']}",
        "wall_times": ", ".join(walls),
        "classifier_s": timings["classifier"]["s"],
        "classifier_trained_s": timings["classifier"].get("trained_s", "n/a"),
        "evaluation_s": timings["evaluation_s"],
        "total_s": timings.get("total_s"),
        "versions": ", ".join(f"{k} {v}" for k, v in result["versions"].items()),
        "platform": result["machine"]["platform"],
        "threads": result["machine"]["threads"],
    }
    text = render_template("reproduce_report.md", values)
    ckpt.atomic_write(out / "REPORT.md", lambda fh: fh.write(text.encode()))
