import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from qmae_qiskit import QAE, QMAE
from qmae_qiskit.checkpoint import CheckpointError
from qmae_qiskit.cli import main
from qmae_qiskit.training import TrainConfig, resume, train

SMALL = dict(limit=320, batch_size=16, epochs=2, lr=0.02, eval_limit=0, checkpoint_every=3)
SMALL_FLAGS = [
    "--limit",
    "320",
    "--batch-size",
    "16",
    "--epochs",
    "2",
    "--lr",
    "0.02",
    "--eval-limit",
    "0",
    "--checkpoint-every",
    "3",
    "--no-progress",
]


def _weights(run_dir):
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]
    return {k: v.clone() for k, v in state.items()}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    result = train(TrainConfig.of(**SMALL), out=out, progress=False)
    return out, result


def test_python_api_trains_and_writes_the_run(reference_run):
    out, result = reference_run
    assert isinstance(result.model, QMAE)
    assert len(result.history) == 2 * 20  # 320 images / 16 per step, 2 epochs
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    for name in ("config.json", "checkpoint.pt", "metrics.jsonl", "loss.png"):
        assert (out / name).is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["options"]["batch_size"] == 16 and config["data_source"] == "embedded"
    assert "qiskit" in config["versions"] and "torch" in config["versions"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 40
    loaded = QMAE.load(str(out))
    torch.testing.assert_close(loaded.theta, result.model.theta, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="QMAE model, not a QAE"):
        QAE.load(str(out))


def _start(out, *extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "qmae_qiskit.cli", "train", "--out", str(out), *SMALL_FLAGS, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for_steps(out, steps, proc):
    deadline = time.time() + 120
    metrics = out / "metrics.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= steps:
            return
        time.sleep(0.02)
    raise AssertionError(
        f"training did not reach {steps} steps: {proc.stderr.read().decode() if proc.poll() is not None else 'timeout'}"
    )


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGKILL, marks=pytest.mark.slow), signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_resumes_bit_for_bit(tmp_path, reference_run, sig):
    ref_dir, _ = reference_run
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_steps(out, 25, proc)  # into the second epoch, between checkpoints
    proc.send_signal(sig)
    proc.wait(timeout=60)
    if sig in (signal.SIGINT, signal.SIGTERM):  # SIGTERM (SLURM, Kubernetes, timeout) saves like Ctrl-C
        assert proc.returncode == 130
        err = proc.stderr.read()
        assert b"--resume" in err and b"checkpoint saved" in err
        assert (b"SIGTERM" in err) == (sig == signal.SIGTERM)
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    ref, got = _weights(ref_dir), _weights(out)
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.equal(ref[key], got[key]), key
    ref_lines = (ref_dir / "metrics.jsonl").read_text().splitlines()
    got_lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["loss"] for x in got_lines] == [json.loads(x)["loss"] for x in ref_lines]


def test_resume_rejects_contradicting_options(reference_run, capsys):
    out, _ = reference_run
    with pytest.raises(ValueError, match="^lr 0.5 contradicts"):
        resume(out, lr=0.5)
    assert main(["train", "--resume", str(out), "--batch-size", "8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--batch-size 8 contradicts" in err[0]


@pytest.mark.parametrize(
    "argv,match",
    [
        (["train", "--out", "X", "--epochs", "0"], "--epochs must be a positive"),
        (["train", "--out", "X", "--batch-size", "-1"], "--batch-size must be a positive"),
        (["train", "--out", "X", "--lr", "0"], "--lr must be a positive"),
        (["train", "--out", "X", "--mask-ratio", "0.3"], "possible ratios"),
        (["train", "--out", "X", "--image-size", "12"], "power of 2"),
        (["train", "--out", "X", "--data-dir", "/does/not/exist"], "does not exist"),
        (["evaluate", "/does/not/exist"], "not a run directory"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, argv, match):
    argv = [a if a != "X" else str(tmp_path / "x") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qmae: error:") and match in err[0]


def test_cli_rejects_unknown_engine(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", "x", "--engine", "pennylane"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, reference_run, capsys):
    out, _ = reference_run
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((out / "config.json").read_text())
    (bad / "checkpoint.pt").write_bytes((out / "checkpoint.pt").read_bytes()[:100])
    assert main(["evaluate", str(bad)]) == 2
    assert "corrupt or unreadable checkpoint" in capsys.readouterr().err


def test_evaluate_json_uses_saved_masks(reference_run, capsys):
    out, result = reference_run
    assert main(["evaluate", str(out), "--limit", "200", "--json", "--no-accuracy"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert {"fidelity", "fidelity_stderr", "images"} <= first.keys() and first["images"] == 200
    assert (out / "eval_masks.npz").is_file()
    assert main(["evaluate", str(out), "--limit", "200", "--json", "--no-accuracy"]) == 0
    assert json.loads(capsys.readouterr().out)["fidelity"] == first["fidelity"]
    assert 0.3 < first["fidelity"] <= 1.0


def test_qmae_and_qae_get_identical_evaluation_masks():
    from qmae_qiskit.runs import evaluation_masks

    assert torch.equal(evaluation_masks(50, QMAE()), evaluation_masks(50, QAE()))


def test_device_option(tmp_path):
    import torch

    from qmae_qiskit.training import TrainConfig, train

    with pytest.raises(ValueError, match="must be a torch device"):
        TrainConfig.of(device="abacus").validate()
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs engine exact"):
            TrainConfig.of(device="cuda", engine="estimator").validate()
    else:
        with pytest.raises(ValueError, match="no CUDA GPU"):
            TrainConfig.of(device="cuda").validate()
    cpu = train(
        out=tmp_path / "cpu",
        image_size=4,
        patch_size="2x2",
        epochs=1,
        limit=64,
        batch_size=16,
        eval_limit=0,
        progress=False,
        device="cpu",
    )
    assert cpu.model.theta.device.type == "cpu"
    if torch.cuda.is_available():  # where a GPU exists, the same run on it follows the same loss curve
        gpu = train(
            out=tmp_path / "gpu",
            image_size=4,
            patch_size="2x2",
            epochs=1,
            limit=64,
            batch_size=16,
            eval_limit=0,
            progress=False,
            device="cuda",
        )
        # Not the weights: Adam divides by sqrt(v), so parameters whose gradient is ~0 (rounding
        # noise, which differs between devices) still move by up to lr; the loss is what must agree.
        losses = [[h["loss"] for h in r.history] for r in (cpu, gpu)]
        assert len(losses[0]) == len(losses[1]) == 4
        torch.testing.assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), atol=1e-4, rtol=0)


def test_package_level_train_returns_model_and_history(tmp_path):
    import qmae_qiskit

    result = qmae_qiskit.train(
        out=tmp_path / "run",
        image_size=4,
        patch_size="2x2",
        epochs=1,
        limit=32,
        batch_size=16,
        eval_limit=0,
        progress=False,
    )
    assert isinstance(result.model, qmae_qiskit.QMAE) and len(result.history) == 2
    assert qmae_qiskit.QMAE.load(tmp_path / "run").theta.equal(result.model.theta)


def test_postselected_training_records_its_acceptance_weight_and_kept_fraction(tmp_path):
    from qmae_qiskit.training import DEFAULT_KEEP_WEIGHT

    result = train(
        out=tmp_path / "ps", objective="postselect", image_size=4, patch_size="2x2", epochs=1, limit=64,
        batch_size=16, eval_limit=0, progress=False,
    )  # fmt: skip
    config = json.loads((tmp_path / "ps" / "config.json").read_text())
    assert (
        config["options"]["keep_weight"] == DEFAULT_KEEP_WEIGHT and config["architecture"]["objective"] == "postselect"
    )
    assert all(0 < h["keep_probability"] <= 1 for h in result.history)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--keep-weight", "0.5"], "--keep-weight holds the kept fraction of --objective postselect (or of --ancillas"),
        (["--objective", "postselect", "--trash-weight", "1"], "use --keep-weight"),
        (["--objective", "postselect", "--keep-weight", "-1"], "--keep-weight must be a number >= 0"),
        (["--ansatz", "unitary", "--engine", "estimator"], "exact engine only"),
        (["--ansatz", "unitary", "--pairs", "line"], "it has no --pairs or --layers"),
        (["--layers", "0"], "--layers must be a positive integer"),
        (["--holdout", "-2"], "--holdout must be"),
    ],
)
def test_inpainting_options_are_checked_in_one_line(tmp_path, capsys, argv, match):
    assert main(["train", "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_holdout_keeps_the_last_training_images_out(tmp_path):
    from qmae_qiskit.runs import data_for_run

    result = train(
        out=tmp_path / "h", image_size=4, patch_size="2x2", epochs=1, limit=100, holdout=30, batch_size=10,
        eval_limit=0, progress=False,
    )  # fmt: skip
    assert len(result.history) == 7  # 70 training images, batch 10
    held = data_for_run(tmp_path / "h", split="holdout")
    full = data_for_run(tmp_path / "h", split="train", limit=100)
    assert torch.equal(held.images, full.images[-30:])


@pytest.mark.parametrize("argv", [["--trash-weight", "1e308"], ["--lr", "1e308"]])
def test_a_diverging_run_stops_in_one_line_and_leaves_no_unusable_directory(tmp_path, capsys, argv):
    """Issue 21: --trash-weight 1e308 trained to nan, saved it and exited 0; now: exit 2, one line,
    and the directory (nothing checkpointed yet) is removed so that --out can be used again."""
    out = tmp_path / "div"
    base = ["train", "--out", str(out), "--image-size", "4", "--patch-size", "2x2", "--limit", "64"]
    assert main([*base, "--epochs", "1", "--batch-size", "16", "--eval-limit", "0", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training diverged" in err[0] and "Lower --lr" in err[0], err
    assert not out.exists()


def test_divergence_after_a_checkpoint_keeps_it_and_the_run_resumes(tmp_path, monkeypatch):
    from qmae_qiskit.model import QMAE
    from qmae_qiskit.training import TrainingDiverged, resume

    calls = {"n": 0}
    real = QMAE.loss_terms

    def flaky(self, *args, **kwargs):
        terms = real(self, *args, **kwargs)
        calls["n"] += 1
        return terms._replace(loss=terms.loss * float("nan")) if calls["n"] == 6 else terms

    monkeypatch.setattr(QMAE, "loss_terms", flaky)
    out = tmp_path / "run"
    options = dict(image_size=4, patch_size="2x2", limit=64, epochs=2, batch_size=16, eval_limit=0, progress=False)
    with pytest.raises(TrainingDiverged, match="the loss became non-finite at step 5.*the last checkpoint"):
        train(out=out, **options)  # 4 steps per epoch: epoch 1 is checkpointed, step 5 diverges
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())
    monkeypatch.setattr(QMAE, "loss_terms", real)
    result = resume(out, progress=False)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 8 and len(result.history) == 8


def _small_run(out, **options):
    base = dict(image_size=4, patch_size="2x2", limit=64, epochs=1, batch_size=16, eval_limit=0, progress=False)
    return train(out=out, **{**base, **options})


def test_resume_refuses_a_config_json_whose_options_changed_under_the_checkpoint(tmp_path, capsys):
    """Issue 21: deleting options.epochs from a finished 1-epoch run's config.json made --resume
    retrain it to the default 3 epochs, overwriting it. The checkpoint records the options' hash."""
    out = tmp_path / "run"
    _small_run(out)
    before = (out / "checkpoint.pt").read_bytes()
    config = json.loads((out / "config.json").read_text())
    del config["options"]["epochs"]
    (out / "config.json").write_text(json.dumps(config))
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "written under other options" in err[0], err
    assert (out / "checkpoint.pt").read_bytes() == before


def test_resume_refuses_a_checkpoint_copied_from_another_run(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    _small_run(a, epochs=2, checkpoint_every=2)
    _small_run(b, limit=48, epochs=2, checkpoint_every=2)
    (a / "checkpoint.pt").write_bytes((b / "checkpoint.pt").read_bytes())
    assert main(["train", "--resume", str(a), "--no-progress"]) == 2
    assert "copied from another run" in capsys.readouterr().err


def _board(run_dir):
    """The run's TensorBoard scalars: tag -> [(step, value)], read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), purge_orphaned_data=True)
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _same_as_metrics(board, run_dir):
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for key in ("loss", "fidelity", "lr"):
        assert [s for s, _ in board[f"train/{key}"]] == [r["step"] for r in lines], key
        np.testing.assert_allclose([v for _, v in board[f"train/{key}"]], [r[key] for r in lines], rtol=1e-6)


def test_tensorboard_events_hold_the_same_per_step_loss_as_metrics_jsonl(tmp_path):
    out = tmp_path / "run"
    result = train(out=out, limit=64, batch_size=16, epochs=2, eval_limit=8, tensorboard=True, progress=False,
                   objective="postselect")  # fmt: skip
    board = _board(out)
    _same_as_metrics(board, out)
    assert len(board["train/keep_probability"]) == 8
    assert board["heldout/fidelity"][-1] == (8, pytest.approx(result.eval_fidelity, rel=1e-6))
    config = json.loads((out / "config.json").read_text())
    assert config["options"]["tensorboard"] is True


def test_tensorboard_without_the_package_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    from qmae_qiskit.options import OptionError

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what an install without it sees
    with pytest.raises(OptionError, match=r"tensorboard needs the tensorboard package: pip install"):
        train(out=tmp_path / "run", limit=32, batch_size=16, epochs=1, eval_limit=0, tensorboard=True, progress=False)
    assert not (tmp_path / "run").exists()


def test_a_finalized_run_evaluates_the_same_and_refuses_resume_in_one_line(tmp_path, capsys, mnist4):
    """What a published run keeps (weights, token, config; no optimizer state): the same model, a
    third of the bytes, and ``--resume`` says it is final and how to fine-tune from it."""
    from qmae_qiskit.checkpoint import finalize_checkpoint, is_final, load_checkpoint

    out = tmp_path / "run"
    _small_run(out, epochs=2)
    model = QMAE.load(out)
    mask = model.random_mask(len(mnist4), generator=torch.Generator().manual_seed(0))
    before_f = model.fidelity(mnist4, mask).detach()
    before, after = finalize_checkpoint(out)
    assert after < before and is_final(load_checkpoint(out))
    assert finalize_checkpoint(out) == (after, after)  # idempotent
    torch.testing.assert_close(QMAE.load(out).fidelity(mnist4, mask).detach(), before_f, rtol=0, atol=0)
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "published run" in err[0] and "--init-from" in err[0], err


def test_every_committed_run_is_final():
    """The repository carries the weights of its results, not their optimizer states."""
    from qmae_qiskit.checkpoint import is_final, load_checkpoint

    root = Path(__file__).resolve().parents[1] / "docs"
    runs = sorted(p.parent for p in root.rglob("checkpoint.pt"))
    assert len(runs) >= 20
    assert [r for r in runs if not is_final(load_checkpoint(r))] == []
