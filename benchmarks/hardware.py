"""Hardware table: fidelity estimates from local testing mode vs. the exact engine, per configuration.

    python benchmarks/hardware.py --out docs/hardware --data-dir ../shared/data/mnist

For each job (device x trained run x embedding budget) it runs ``qmae submit`` once, with every
mitigation recorded (mthree calibration, ZNE scales 1 and 3, CDR training circuits), then scores
the same counts with each subset of mitigation (:func:`qmae_qiskit.runtime.rescore`). Per
row: two-qubit gates and depth after transpilation, mean estimate, the exact value under the full
embedding (what the user wants), the exact value of the circuit that ran, and the mean absolute
error against the full-embedding value. Writes ``hardware.json``, ``hardware.md`` (table) and
``hardware.png`` (error vs. two-qubit gates) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

MITIGATIONS = {  # name -> rescore options
    "none": dict(readout_mitigation=False, zne=False, cdr=False),
    "readout": dict(readout_mitigation=True, zne=False, cdr=False),
    "readout+zne": dict(readout_mitigation=True, zne=True, cdr=False),
    "readout+cdr": dict(readout_mitigation=True, zne=False, cdr=True, cdr_target="ran"),
    "readout+zne+cdr": dict(readout_mitigation=True, zne=True, cdr=True, cdr_target="ran"),
    "readout+cdr(full)": dict(readout_mitigation=True, zne=False, cdr=True, cdr_target="full"),
}

POSTSELECT_LINE = "docs/results/runs/qmae-25-postselect-line"  # --pairs line --objective postselect
FULL_JOBS = [  # (backend, run, embedding layers, zne, variant)
    ("fake_fez", "docs/results/runs/qmae-25", None, False, "compute_uncompute"),
    ("fake_fez", "docs/results/runs/qmae-25", 16, True, "compute_uncompute"),
    ("fake_fez", "docs/results/runs/qmae-25-line", None, False, "compute_uncompute"),
    ("fake_fez", "docs/results/runs/qmae-25-line", 8, True, "compute_uncompute"),
    ("fake_fez", "docs/results/runs/qmae-25-line", 12, False, "compute_uncompute"),
    ("fake_fez", "docs/results/runs/qmae-25-line", 16, True, "compute_uncompute"),
    ("fake_torino", "docs/results/runs/qmae-25", 16, True, "compute_uncompute"),
    ("fake_torino", "docs/results/runs/qmae-25-line", 16, True, "compute_uncompute"),
    ("fake_fez", POSTSELECT_LINE, 16, True, "postselect"),
    ("fake_fez", POSTSELECT_LINE, 16, False, "postselect_flag"),
    ("fake_torino", POSTSELECT_LINE, 16, False, "postselect"),
]
QUICK_JOBS = [("fake_fez", "docs/results/runs/qmae-25-line", 2, True, "compute_uncompute")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--data-dir", help="MNIST directory (default: the run's source)")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--shots", type=int, default=2000)
    parser.add_argument("--cdr", type=int, default=16, help="CDR training circuits per job")
    parser.add_argument("--quick", action="store_true", help="one small job (CI): checks the pipeline, not the figures")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the finished job records in OUT/jobs that match a job (same backend, run, variant, embedding, "
        "mitigation, images, shots) instead of submitting it again: an interrupted benchmark goes on where it stopped",
    )
    parser.add_argument(
        "--retable", action="store_true", help="re-score the jobs recorded in OUT/hardware.json (no new runs)"
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QMAE_JOBS_DIR", str(out / "jobs"))

    from qmae_qiskit.checkpoint import write_json
    from qmae_qiskit.model import load_model
    from qmae_qiskit.runtime import rescore, submit
    from qmae_qiskit.runtime.backends import get_backend
    from qmae_qiskit.runtime.transpile import transpile_report

    if args.retable:
        os.environ["QMAE_JOBS_DIR"] = str(out / "jobs")
        return retable(out)
    jobs = QUICK_JOBS if args.quick else FULL_JOBS
    images = 2 if args.quick else args.images
    cdr = 4 if args.quick else args.cdr
    shots = 500 if args.quick else args.shots
    rows = []
    # Seconds of jobs already run: rows a previous (interrupted) benchmark printed and saved.
    seconds_before = {r["record_id"]: r["job_seconds"] for r in _saved_rows(out)}
    for backend, run, layers, zne, variant in jobs:
        model = load_model(run).set_embedding(layers)
        report = transpile_report(model, get_backend(backend), (variant,))[0]
        start = time.perf_counter()
        wanted = dict(backend=backend, run=run, layers=layers, zne=zne, variant=variant, images=images, shots=shots)
        record = _finished_record(**wanted, cdr=cdr) if args.resume else None
        if record is not None:
            print(f"reusing {record.record_id} for {backend} {Path(run).name} {variant} L={layers}", flush=True)
        else:
            record = submit(
                run,
                backend=backend,
                images=images,
                shots=shots,
                variant=variant,
                embedding_layers=layers,
                readout_mitigation=True,
                zne="1,3" if zne else None,
                cdr=cdr,
                data_dir=args.data_dir,
            )
        seconds = seconds_before.get(record.record_id, time.perf_counter() - start)
        for name, options in MITIGATIONS.items():
            if options["zne"] and not zne:
                continue
            use_zne = options["zne"]
            result = rescore(record.record_id, **options)
            est = np.array([r["fidelity"] for r in result.images])
            exact = np.array([r["exact"] for r in result.images])
            ran = np.array(
                [r["exact_embedded"] if r["exact_embedded"] is not None else r["exact"] for r in result.images]
            )
            row = {
                "backend": backend,
                "run": Path(run).name,
                "pairs": "line" if "line" in Path(run).name else "all",
                "embedding": "exact" if layers is None else f"ladder L={layers}",
                "variant": variant,
                "mitigation": name,
                "two_qubit_gates": report.two_qubit_gates * (3 if use_zne else 1),
                "two_qubit_gates_base": report.two_qubit_gates,
                "depth": report.depth,
                "estimate": float(est.mean()),
                "exact": float(exact.mean()),
                "exact_embedded": float(ran.mean()),
                "mae": float(np.abs(est - exact).mean()),
                "mae_vs_embedded": float(np.abs(est - ran).mean()),
                "images": images,
                "shots": shots,
                "record_id": record.record_id,
                "job_seconds": seconds,
                "calibration": (record.calibration or {}).get("method"),
            }
            if result.mean_keep_fraction is not None:  # post-selected: the shots kept, measured and exact
                row["keep_fraction"] = result.mean_keep_fraction
                row["exact_keep"] = float(np.mean(record.exact_keep))
            row.update(baselines(record.record_id, est, exact))
            rows.append(row)
            print(json.dumps(row), flush=True)
        write_json(out / "hardware.json", {"rows": rows, "images": images, "shots": shots, "cdr": cdr})  # so far
    rows.sort(key=_order)
    write_json(out / "hardware.json", {"rows": rows, "images": images, "shots": shots, "cdr": cdr})
    (out / "hardware.md").write_text(table(rows))
    plot(rows, out / "hardware.png")
    if not args.quick:
        reconstructions(out, shots=args.shots * 4, data_dir=args.data_dir)
    _relative_run_dirs(Path(os.environ["QMAE_JOBS_DIR"]))


def reconstructions(out: Path, *, shots: int, data_dir: str | None) -> None:
    """Post-selected reconstructions of the first 6 test images, from fake_fez counts (the line
    encoder and the L = 16 ladder: the circuit hardware can run) next to the exact ones."""
    from qmae_qiskit.runtime import fetch, submit

    record = submit(POSTSELECT_LINE, backend="fake_fez", images=6, shots=shots, reconstruct=True, embedding_layers=16,
                    data_dir=data_dir)  # fmt: skip
    result = fetch(record.record_id, png=out / "reconstructions_postselect_fake_fez.png")
    summary = {"record_id": record.record_id, "variant": record.variant, "shots": shots, "images": result.images}
    (out / "reconstructions_postselect_fake_fez.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"reconstructions: {result.png} (mean distribution fidelity {result.mean_fidelity:.3f})", flush=True)


def _relative_run_dirs(jobs: Path) -> None:
    """Records name their run by a path relative to the repository, so --retable works in any clone."""
    for path in jobs.glob("*.json"):
        if path.name.endswith((".result.json", ".m3.json")):
            continue
        record = json.loads(path.read_text())
        record["run_dir"] = os.path.relpath(record["run_dir"], Path.cwd())
        path.write_text(json.dumps(record, indent=1))


def _order(r: dict) -> tuple:
    """One row order for a fresh run and --retable: device, run, circuit, embedding, mitigation."""
    layers = 0 if r["embedding"] == "exact" else int(r["embedding"].split("=")[1])
    return (r["backend"], r["run"], r.get("variant", ""), layers, list(MITIGATIONS).index(r["mitigation"]))


def _saved_rows(out: Path) -> list[dict]:
    try:
        return json.loads((out / "hardware.json").read_text())["rows"]
    except (OSError, ValueError, KeyError):
        return []


def _finished_record(*, backend: str, run: str, layers, zne: bool, variant: str, images: int, shots: int, cdr: int):
    """The newest finished record in the jobs directory that is this job, or None."""
    from qmae_qiskit.runtime import list_jobs

    for record in list_jobs(refresh=False):  # newest first
        o = record.options
        if (
            record.status == "done"
            and record.backend == backend
            and Path(record.run_dir).resolve() == Path(run).resolve()
            and record.variant == variant
            and o.get("embedding_layers") == layers
            and bool(o.get("zne")) == zne
            and o.get("cdr") == cdr
            and record.shots == shots
            and len(record.indices) == images
        ):
            return record
    return None


def retable(out: Path) -> None:
    from qmae_qiskit.checkpoint import write_json
    from qmae_qiskit.runtime import rescore

    saved = json.loads((out / "hardware.json").read_text())
    done = {(r["record_id"], r["mitigation"]) for r in saved["rows"]}
    for record_id in dict.fromkeys(r["record_id"] for r in saved["rows"]):  # mitigations added since the run
        template = next(r for r in saved["rows"] if r["record_id"] == record_id)
        for name, options in MITIGATIONS.items():
            has_zne = any(
                r["mitigation"].startswith("readout+zne") for r in saved["rows"] if r["record_id"] == record_id
            )
            if (record_id, name) not in done and (has_zne or not options["zne"]):
                saved["rows"].append(
                    dict(
                        template,
                        mitigation=name,
                        two_qubit_gates=template["two_qubit_gates_base"] * (3 if options["zne"] else 1),
                    )
                )
    saved["rows"].sort(key=_order)
    for row in saved["rows"]:
        result = rescore(row["record_id"], **MITIGATIONS[row["mitigation"]])
        est = np.array([r["fidelity"] for r in result.images])
        exact = np.array([r["exact"] for r in result.images])
        ran = np.array([r["exact_embedded"] if r["exact_embedded"] is not None else r["exact"] for r in result.images])
        row.update(
            estimate=float(est.mean()),
            mae=float(np.abs(est - exact).mean()),
            mae_vs_embedded=float(np.abs(est - ran).mean()),
            **baselines(row["record_id"], est, exact),
        )
    write_json(out / "hardware.json", saved)
    (out / "hardware.md").write_text(table(saved["rows"]))
    plot(saved["rows"], out / "hardware.png")


def baselines(record_id: str, est: np.ndarray, exact: np.ndarray) -> dict:
    """What an estimate must beat to carry information: the MAE of guessing the training
    circuits' mean exact value for every image (no hardware at all), and the correlation of the
    estimates with the exact values across images."""
    from qmae_qiskit.runtime import load_record

    record = load_record(record_id)
    guess = float(np.mean(record.training_exact)) if record.training_exact else float("nan")
    corr = float(np.corrcoef(est, exact)[0, 1]) if np.std(est) > 0 and len(est) > 2 else float("nan")
    return {"mae_constant_guess": float(np.abs(guess - exact).mean()), "correlation": corr}


def table(rows: list[dict]) -> str:
    lines = [
        "| device | encoder pairs | circuit | embedding | mitigation | 2q gates | depth | estimate | "
        "exact (full emb.) | exact (ran) | MAE vs full | MAE vs ran | MAE of a constant guess | corr. with exact | "
        "kept (exact) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        kept = f"{r['keep_fraction']:.3f} ({r['exact_keep']:.3f})" if "keep_fraction" in r else "–"
        lines.append(
            f"| {r['backend']} | {r['pairs']} | {r.get('variant', 'compute_uncompute')} | {r['embedding']} | "
            f"{r['mitigation']} | {r['two_qubit_gates_base']} | {r['depth']} | "
            f"{r['estimate']:.3f} | {r['exact']:.3f} | {r['exact_embedded']:.3f} | **{r['mae']:.3f}** | "
            f"{r['mae_vs_embedded']:.3f} | {r['mae_constant_guess']:.3f} | {r['correlation']:.2f} | {kept} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    from qmae_qiskit.figures import new_figure, save_figure

    fig, ax = new_figure(figsize=(7, 4.2))
    for name, marker in zip(MITIGATIONS, "ox^sDv"):
        pts = [(r["two_qubit_gates_base"], r["mae"]) for r in rows if r["mitigation"] == name]
        if pts:
            x, y = zip(*pts)
            ax.scatter(x, y, marker=marker, label=name)
    ax.axhline(0.05, color="gray", ls="--", lw=1)
    ax.axvline(300, color="gray", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("two-qubit gates after transpilation (unfolded)")
    ax.set_ylabel("mean |estimate - exact (full embedding)|")
    ax.set_title("QMAE fidelity on fake IBM devices (local testing mode)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
