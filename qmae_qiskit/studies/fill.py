"""``qmae fill-study``: a QMAE that fills in the patch, chosen on held-out training images.

Issue 20's study. The candidates (:data:`CANDIDATES`) combine the fill-in knobs: mask-position
conditioning (``condition="position"``: weights and token per patch position), the
ancilla-assisted decoder (``ancillas``: a block-encoded contraction instead of a projector), the
loss aimed at the patch (``loss="composite"``) and the acceptance weight. Every candidate is
post-selected, trained with seed 0 on the training split *minus its last* ``holdout`` *images*,
and scored on those held-out training images (masked PSNR of the patch, P(keep), composite
fidelity), next to the mean-image and linear fills on the same images. The best candidate by
held-out masked PSNR, among those keeping at least ``min_keep`` of the shots, is then trained
for the other seeds and scored **once** on the test split (all 10,000 MNIST test images by
default) with every metric, the pass-through rows (zeros, token, mean image, linear fill) and
the paired 95 % intervals of its masked PSNR over the mean-image and linear fills (per seed).

Next to the choice, its **ceiling** (:func:`ceiling_of`): the same channel with general unitaries
in place of the circuits (``ansatz="unitary"``), trained for the same seeds, scored on the same
held-out and test images, with the paired interval of the chosen circuit's masked PSNR minus the
ceiling's: how much of what the architecture allows the circuit reaches.

Writes ``results.json`` and ``report.md`` into ``--out``; runs live in ``--out/runs`` and are
reused when finished, resumed when interrupted.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .. import checkpoint as ckpt
from ..results import StudyResult
from ..runs import writer_lock
from .experiments import ExecutorOptions, RunSpec, executor_options, run_dir, run_parallel, train_or_reuse, verdict
from .report import markdown_table

__all__ = [
    "CANDIDATES",
    "CEILING_BATCH",
    "CEILING_LR",
    "COMMON",
    "MIN_KEEP",
    "ceiling_of",
    "fill_study",
    "score_holdout",
]

COMMON: dict[str, Any] = dict(
    model="qmae",
    objective="postselect",
    condition="position",
    mask_ratio=0.25,
    patch_size="8x8",
    epochs=3,
    batch_size=32,
    holdout=2000,
    eval_limit=0,
)
QUICK: dict[str, Any] = dict(epochs=1, limit=600, holdout=200)
# The floor on the held-out kept fraction: twice issue 20's 0.05 (below which a device spends 20 shots
# per kept one), so that the choice, measured on one seed's held-out images, keeps the 0.05 over
# seeds and unseen images with a margin (the acceptance weight 0.001 kept 0.055: at the edge).
MIN_KEEP = 0.10

CANDIDATES = (
    RunSpec("fill-A0-composite-k0.01", dict(ancillas=0, loss="composite", keep_weight=0.01)),
    RunSpec("fill-A1-composite-k0.01", dict(ancillas=1, loss="composite", keep_weight=0.01)),
    RunSpec("fill-A2-fidelity-k0.01", dict(ancillas=2, loss="fidelity", keep_weight=0.01)),
    RunSpec("fill-A2-composite-k0.01", dict(ancillas=2, loss="composite", keep_weight=0.01)),
    RunSpec("fill-A2-composite-k0.001", dict(ancillas=2, loss="composite", keep_weight=0.001)),
)
# The ceiling's batch: its cost per step is the 2^(n+1)-dimensional eigendecomposition, the same at any
# batch, so larger batches buy more images per second (as for the study's ceilings, study.CEILING_OPTIONS).
CEILING_BATCH = 128
# The ceiling's Adam learning rate, chosen on held-out training images (one epoch on the first 6,000
# training images at batch 128, scored on the next 2,000; the test split not looked at): masked PSNR
# 16.57 dB at 0.02 (the circuits' rate), 16.95 at 0.005, 16.97 at 0.002, 16.77 at 0.001 (docs/fill.md).
CEILING_LR = 0.002


def ceiling_of(spec: RunSpec) -> RunSpec:
    """The ceiling of a candidate: the same options with general unitaries (``ansatz="unitary"``):
    the encoder a general ``2^n`` unitary and, for an ancilla-assisted decoder, the ancilla stage a
    general unitary on ``n + 1`` qubits.

    One ancilla is enough for the bound of any number ``A >= 1``: ``<0|W|0>`` over the unitaries
    ``W`` on ``n + 1`` qubits is every contraction on the data (a unitary dilation
    ``[[M, (I - M M^dagger)^(1/2)], [(I - M^dagger M)^(1/2), -M^dagger]]``), and so is the top-left
    block of a unitary on ``n + A`` qubits; one ancilla keeps the matrix at ``512 x 512`` for
    ``n = 8``. Trained at batch :data:`CEILING_BATCH` and learning rate :data:`CEILING_LR`. An
    optimised bound (found by training, not proved), not a circuit: it cannot run on a device.
    """
    ancillas = min(1, int(spec.options.get("ancillas", 0)))
    options = {**spec.options, "ansatz": "unitary", "ancillas": ancillas, "batch_size": CEILING_BATCH, "lr": CEILING_LR}
    return RunSpec(f"ceiling-{spec.name}", options, label=f"ceiling of {spec.name} (general unitaries)")


HOLDOUT_KEYS = ("masked_psnr", "keep_probability", "composite_fidelity", "fidelity")


def _train(spec: RunSpec, runs: Path, seed: int, common: dict[str, Any]) -> tuple[Path, float, str]:
    return train_or_reuse(spec, runs, seed, common=common)


def _train_all(
    jobs: list[tuple[RunSpec, int]], runs: Path, common: dict[str, Any], workers: ExecutorOptions
) -> dict[str, float]:
    """Train (or reuse) every ``(spec, seed)`` on ``workers``; seconds spent per run."""
    names = [run_dir(runs, spec, seed).name for spec, seed in jobs]
    done = run_parallel(_train, [(spec, runs, seed, common) for spec, seed in jobs], workers, names=names)
    return {path.name: seconds for path, seconds, how in done if how != "reused"}


def score_holdout(path: str | os.PathLike, *, data_dir: str | None = None) -> dict[str, Any]:
    """A run's numbers on the training images it held out (``--holdout``), with the mean-image and
    linear fills (fitted on the images it trained on) on the same masks: what the choice rests on.

    Raises:
        DataError: a run without held-out images.
    """
    from ..evaluation import evaluate_images, passthrough, passthrough_fills
    from ..linear_fill import fit_linear_fill
    from ..model import load_model
    from ..runs import data_for_run, evaluation_masks

    model = load_model(path)
    held = data_for_run(path, split="holdout", data_dir=data_dir)
    trained = data_for_run(path, split="train", data_dir=data_dir)
    masks = evaluation_masks(len(held.images), model, seed=12345)  # not the test split's masks
    row = evaluate_images(model, held.images, masks, with_ssim=False, extras=False).to_json()
    out = {key: row[key] for key in HOLDOUT_KEYS if key in row}
    linear = fit_linear_fill(trained.images, patch_size=model.patch_size)
    fills = passthrough_fills(model, held.images, masks, trained.images.mean(0), linear)
    for name in ("mean_image", "linear_fill"):
        out[f"{name}_masked_psnr"] = passthrough(
            held.images, masks, fills[name], with_ssim=False
        ).metrics.masked_psnr.mean
    out["images"] = len(held.images)
    return out


def _choose(holdout: dict[str, dict[str, Any]], min_keep: float) -> str:
    eligible = {n: r for n, r in holdout.items() if r.get("keep_probability", 1.0) >= min_keep}
    if not eligible:
        raise ValueError(f"no candidate keeps {min_keep:g} of its shots on the held-out images")
    return max(eligible, key=lambda n: eligible[n]["masked_psnr"])


def fill_study(
    out: str | os.PathLike,
    *,
    seeds: int = 3,
    data_dir: str | None = None,
    limit: int | None = None,
    quick: bool = False,
    jobs: int | None = None,
    min_keep: float = MIN_KEEP,
    candidates: tuple[RunSpec, ...] = CANDIDATES,
    progress: bool = True,
    executor: ExecutorOptions | str = "local",
    address: str | None = None,
    cpus_per_run: int | None = None,
    ceiling: bool = True,
) -> StudyResult:
    """Choose a fill-in configuration on held-out training images, then test it once, next to its ceiling.

    Args:
        out: the study directory (``runs/``, ``results.json``, ``report.md``).
        seeds: seeds of the chosen configuration (its seed 0 is the candidate's run).
        data_dir: MNIST in torchvision's layout.
        limit: score on the first N test images (default all).
        quick: one epoch on 600 training images (a pipeline check, not a result).
        jobs: runs trained at once, each in its own process.
        min_keep: the smallest held-out P(keep) a candidate may have.
        candidates: the configurations tried.
        executor, address, cpus_per_run: where the runs train (``"ray"``: Ray tasks), as for
            :func:`~qmae_qiskit.studies.study.study`.
        ceiling: also train the chosen configuration's ceiling (:func:`ceiling_of`) for the same
            seeds and report it (``results.json``'s ``ceiling``); ``False`` leaves it out.

    Returns:
        A :class:`~qmae_qiskit.results.StudyResult` (``to_json()``: the ``results.json`` content).

    Raises:
        ValueError: ``seeds`` below 2 (a paired interval needs two), or no candidate keeps enough shots.
    """
    from ..evaluation import evaluate_run

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ValueError(f"seeds must be an integer >= 2 (the paired interval over seeds needs two), got {seeds!r}")
    runner = executor_options(executor, jobs=jobs, address=address, cpus_per_run=cpus_per_run)  # before any write
    out = Path(out)
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    common = {**COMMON, **(QUICK if quick else {}), "data_dir": data_dir}
    with writer_lock(out):
        start = time.perf_counter()
        train_s = _train_all([(spec, 0) for spec in candidates], runs, common, runner)
        holdout = {spec.name: score_holdout(run_dir(runs, spec, 0), data_dir=data_dir) for spec in candidates}
        best = _choose(holdout, min_keep)
        spec = next(s for s in candidates if s.name == best)
        bound = ceiling_of(spec) if ceiling else None
        jobs_left = [(spec, seed) for seed in range(1, seeds)]
        jobs_left += [(bound, seed) for seed in range(seeds)] if bound else []
        train_s.update(_train_all(jobs_left, runs, common, runner))

        def test_rows(which: RunSpec) -> list[dict[str, Any]]:  # no classifier in a quick check (the slow part)
            return [
                evaluate_run(
                    run_dir(runs, which, seed),
                    data_dir=data_dir,
                    limit=limit,
                    progress=progress,
                    with_accuracy=not quick,
                ).to_json()
                for seed in range(seeds)
            ]

        test = test_rows(spec)
        result = _summarize(spec, holdout, test, common, seeds)
        if bound is not None:
            result["ceiling"] = _ceiling_summary(
                bound, spec, score_holdout(run_dir(runs, bound, 0), data_dir=data_dir), test, test_rows(bound)
            )
        result["min_keep"] = min_keep
        result["timings"] = {"train_s": train_s, "total_s": time.perf_counter() - start}
        ckpt.write_json(out / "results.json", result)
        (out / "report.md").write_text(report(result))
    return StudyResult.from_json("fill-study", result)


def _per_seed(test: list[dict[str, Any]], key: str, fill: str | None = None) -> list[float]:
    return [row["passthrough"][fill][key] if fill else row[key] for row in test]


def _summarize(
    spec: RunSpec, holdout: dict[str, Any], test: list[dict[str, Any]], common: dict[str, Any], seeds: int
) -> dict[str, Any]:
    keys: tuple[str, ...] = ("fidelity", "keep_probability", "fidelity_per_shot", "masked_psnr", "composite_fidelity")
    keys += ("composite_accuracy", "accuracy", "input_accuracy")
    seeds_rows = [{k: row.get(k) for k in keys} for row in test]
    fills = {}
    for name in test[0]["passthrough"]:
        fills[name] = {k: test[0]["passthrough"][name].get(k) for k in ("fidelity", "masked_psnr", "accuracy")}
    verdicts = []
    for fill, margin in (("mean_image", 1.0), ("linear_fill", 0.0)):
        if fill not in fills:
            continue
        v = verdict(
            f"{spec.name} fills the patch better than the {fill.replace('_', ' ')} (masked PSNR)",
            _per_seed(test, "masked_psnr"),
            _per_seed(test, "masked_psnr", fill),
            unit=" dB",
        )
        verdicts.append({"fill": fill, "margin_db": margin, "sentence": v.sentence(), **v.interval._asdict()})
    if all(r.get("composite_accuracy") is not None for r in seeds_rows):  # no classifier in a quick run
        verdicts.append(accuracy_verdict(spec.name, seeds_rows))
    return {
        "chosen": spec.name,
        "options": {**common, **spec.options},
        "holdout": holdout,
        "test": seeds_rows,
        "passthrough": fills,
        "verdicts": verdicts,
        "seeds": seeds,
        "test_images": test[0]["images"],
    }


def _ceiling_summary(
    bound: RunSpec,
    spec: RunSpec,
    holdout: dict[str, Any],
    test: list[dict[str, Any]],
    ceiling_test: list[dict[str, Any]],
) -> dict[str, Any]:
    """``results.json``'s ``ceiling``: its options, held-out and per-seed test rows, and the paired
    interval (over seeds) of the chosen circuit's masked PSNR minus the ceiling's."""
    keys: tuple[str, ...] = ("fidelity", "keep_probability", "fidelity_per_shot", "masked_psnr", "composite_fidelity")
    keys += ("composite_accuracy", "input_accuracy")
    v = verdict(
        f"{spec.name} fills the patch better than its ceiling {bound.name} (masked PSNR)",
        _per_seed(test, "masked_psnr"),
        _per_seed(ceiling_test, "masked_psnr"),
        unit=" dB",
    )
    return {
        "name": bound.name,
        "of": spec.name,
        "options": dict(bound.options),
        "holdout": holdout,
        "test": [{k: row.get(k) for k in keys} for row in ceiling_test],
        "verdict": {"sentence": v.sentence(), **v.interval._asdict()},
    }


def accuracy_verdict(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Does the composite classify better than the model's own token-filled input (per seed)?"""
    v = verdict(
        f"{name}'s composite is classified better than its own token-filled input (ResNet18 accuracy)",
        [100 * r["composite_accuracy"] for r in rows],
        [100 * r["input_accuracy"] for r in rows],
        unit=" pp",
    )
    return {"fill": "own_input", "metric": "accuracy", "sentence": v.sentence(), **v.interval._asdict()}


def report(result: dict[str, Any]) -> str:
    """``report.md``: the held-out choice, then the test numbers of the chosen configuration."""
    held = result["holdout"]
    rows = [
        [
            name,
            f"{r['masked_psnr']:.2f}",
            f"{r.get('keep_probability', 1.0):.3f}",
            f"{r['composite_fidelity']:.4f}",
            f"{r['mean_image_masked_psnr']:.2f}",
            f"{r['linear_fill_masked_psnr']:.2f}",
        ]
        for name, r in held.items()
    ]
    lines = [
        "# Fill-in study: chosen on held-out training images, tested once",
        "",
        f"Candidates trained with seed 0 on the training split minus its last {result['options']['holdout']} images, "
        "scored on those held-out images (masks drawn from seed 12345):",
        "",
        markdown_table(
            ["candidate", "masked PSNR (dB)", "P(keep)", "composite F", "mean-image fill", "linear fill"], rows
        ),
        "",
        f"Chosen: **{result['chosen']}**: the highest held-out masked PSNR with P(keep) >= {result['min_keep']} "
        "(twice the 0.05 floor, for a margin over seeds and unseen images).",
        "",
        f"## Test split ({result['test_images']} images, the runs' saved masks), {result['seeds']} seeds",
        "",
    ]
    keys = list(result["test"][0])
    trows = [[f"seed {i}"] + [_fmt(row.get(k)) for k in keys] for i, row in enumerate(result["test"])]
    lines += [markdown_table(["run", *keys], trows), "", "Pass-through rows (seed 0's masks):", ""]
    prow = [
        [name, _fmt(r["fidelity"]), _fmt(r["masked_psnr"]), _fmt(r.get("accuracy"))]
        for name, r in result["passthrough"].items()
    ]
    lines += [markdown_table(["fill", "fidelity", "masked PSNR (dB)", "accuracy"], prow), ""]
    lines += [f"- {v['sentence']}" for v in result["verdicts"]]
    if "ceiling" in result:
        lines += ["", *_ceiling_report(result["ceiling"])]
    return "\n".join(lines) + "\n"


def _ceiling_report(c: dict[str, Any]) -> list[str]:
    h = c["holdout"]
    lines = [
        f"## The ceiling: {c['name']}",
        "",
        f"{c['of']}'s options with general unitaries (the encoder a general 2^n unitary, the ancilla stage a "
        "general unitary on n + 1 qubits: every contraction, so the bound of any ancilla count >= 1), batch "
        f"{c['options']['batch_size']}. An optimised bound, not a circuit. Held-out training images: masked PSNR "
        f"{h['masked_psnr']:.2f} dB, P(keep) {h.get('keep_probability', 1.0):.3f}, composite F "
        f"{h['composite_fidelity']:.4f}.",
        "",
    ]
    keys = list(c["test"][0])
    rows = [[f"seed {i}"] + [_fmt(row.get(k)) for k in keys] for i, row in enumerate(c["test"])]
    return lines + [markdown_table(["ceiling", *keys], rows), "", f"- {c['verdict']['sentence']}"]


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
