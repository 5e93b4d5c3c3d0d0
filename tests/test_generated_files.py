"""Generated bad (and good) inputs beyond ``qmae train`` (issue 21, item 8): the flags of ``qmae
evaluate`` and ``qmae submit``, and hand-edited run files (``config.json``, ``metrics.jsonl``,
``checkpoint.pt``, ``eval_masks.npz``) and job records (the record and its saved counts) read back by
``qmae evaluate``, ``qmae train --resume``, ``qmae fetch`` and ``qmae jobs``.

The contract, for every drawn case: exit 0 with finite numbers, or exit 2 with one line that starts
``qmae:`` and no traceback; a refused ``submit`` leaves no job record; ``qmae jobs`` lists the valid
records whatever else is in the directory; nothing a command reads is left damaged (the checkpoint
still loads with finite weights).

CI runs ``QMAE_GENERATED_EXAMPLES`` (default 40) examples per test, derandomized; a campaign:
``QMAE_GENERATED_RANDOM=1 QMAE_GENERATED_EXAMPLES=500 pytest tests/test_generated_files.py``
(``docs/reliability.md`` has what it found).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qmae_qiskit.cli import main

EXAMPLES = int(os.environ.get("QMAE_GENERATED_EXAMPLES", "40"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("QMAE_GENERATED_RANDOM"),  # CI: the same examples every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)

# values a hand edit or a bad flag puts where a number, a string, a list or a mapping was
JSON_VALUES = st.sampled_from(
    [None, "", "x", "-1", -1, 0, 1, 2.5, 1e308, -1e308, float("nan"), float("inf"), 2**70, True, [], [1], {}, {"a": 1}]
)
GARBAGE = st.sampled_from(["", "x", "-", "nan", "inf", "-inf", "1e308", "0x10", "1,2", " 1", "None", "../x"])
COUNTS = st.sampled_from(["-1", "0", "1", "2", "3", "4", "1000000", "99999999999999999999999", "1.5"])


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``qmae argv`` in this process: its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own refusals exit from the parser
            code = exc.code if isinstance(exc.code, int) else 2
    return int(code or 0), out.getvalue(), err.getvalue()


def keeps_contract(argv: list[str], code: int, out: str, err: str) -> None:
    """Exit 0 with finite numbers in its JSON (when it prints JSON), or exit 2 with one line."""
    assert "Traceback" not in err and "unexpected" not in err, (argv, err)
    if code == 0:
        if "--json" in argv and out.strip():
            finite(json.loads(out), argv)
        return
    assert code == 2, (argv, code, err)
    errors = [line for line in err.splitlines() if line.startswith("qmae:")]
    assert len(errors) == 1, (argv, err)


def finite(value: Any, argv: list[str]) -> None:
    """Every number in a printed JSON result is finite (a NaN fidelity is a silent wrong result)."""
    if isinstance(value, float):
        assert math.isfinite(value), (argv, value)
    elif isinstance(value, dict):
        for v in value.values():
            finite(v, argv)
    elif isinstance(value, list):
        for v in value:
            finite(v, argv)


def loads_finite(run: Path) -> None:
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if torch.is_tensor(v))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A trained 4x4 run and a finished local job of it (noiseless Aer), made once."""
    root = tmp_path_factory.mktemp("generated")
    jobs = root / "jobs"
    previous = os.environ.get("QMAE_JOBS_DIR")
    os.environ["QMAE_JOBS_DIR"] = str(jobs)
    run = root / "run"
    base = ["--image-size", "4", "--patch-size", "2x2", "--limit", "32", "--batch-size", "16", "--epochs", "1"]
    code, _, err = run_cli(["train", "--out", run, *base, "--eval-limit", "8", "--no-progress"])
    assert code == 0, err
    job = ["--images", "2", "--shots", "200", "--variant", "compute_uncompute", "--json"]
    code, out, err = run_cli(["submit", run, "--backend", "aer", *job])
    assert code == 0, err
    record_id = json.loads(out)["record_id"]
    yield {"root": root, "run": run, "jobs": jobs, "record": record_id}
    if previous is None:
        os.environ.pop("QMAE_JOBS_DIR", None)
    else:
        os.environ["QMAE_JOBS_DIR"] = previous


# ----------------------------------------------------------------------------------------------
# flags of evaluate and submit


EVALUATE_FLAGS: dict[str, st.SearchStrategy[str]] = {
    "--limit": st.one_of(COUNTS, GARBAGE),
    "--split": st.sampled_from(["test", "train", "val", ""]),
    "--embedding-layers": st.one_of(st.sampled_from(["0", "1", "2", "65", "100000"]), GARBAGE),
    "--data-dir": st.sampled_from(["/no/such/dir", "", "."]),
}
SUBMIT_FLAGS: dict[str, st.SearchStrategy[str]] = {
    "--images": st.one_of(COUNTS, GARBAGE),
    "--shots": st.one_of(st.sampled_from(["1", "10", "100", "0", "-5", str(10**12)]), GARBAGE),
    "--variant": st.sampled_from(["reset", "paper", "destructive", "compute_uncompute", "postselect", "bad"]),
    "--zne": st.sampled_from(["1,3", "1", "3,1", "1,2", "1,3001", "1,3,5", "", "x", "0,1"]),
    "--extrapolation": st.sampled_from(["exponential", "linear", "cubic"]),
    "--cdr": st.one_of(st.sampled_from(["3", "4", "2", "0", "100000"]), GARBAGE),
    "--cdr-target": st.sampled_from(["ran", "full", "both"]),
    "--embedding-layers": st.one_of(st.sampled_from(["1", "2", "0", "65", "100000"]), GARBAGE),
    "--seed": st.one_of(COUNTS, GARBAGE),
    "--calibration-shots": st.one_of(st.sampled_from(["1", "100", "0"]), GARBAGE),
    "--optimization-level": st.sampled_from(["0", "1", "3", "4", "x"]),
    "--simulator-method": st.sampled_from(["automatic", "statevector", "density_matrix", "stabilizer"]),
}
SUBMIT_SWITCHES = ["--reconstruct", "--readout-mitigation", "--twirling", "--dd"]


@st.composite
def flags_of(draw, table: dict[str, st.SearchStrategy[str]], switches: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    names = draw(st.lists(st.sampled_from(sorted(table) + list(switches)), min_size=1, max_size=4, unique=True))
    out: list[str] = []
    for name in names:
        out += [name] if name in switches else [name, draw(table[name])]
    return out


@SETTINGS
@given(flags=flags_of(EVALUATE_FLAGS))
def test_every_generated_evaluate_command_keeps_the_contract(workspace, flags):
    argv = ["evaluate", workspace["run"], "--no-accuracy", "--json", *flags]
    if "--limit" not in flags:
        argv += ["--limit", "8"]
    code, out, err = run_cli(argv)
    keeps_contract(argv, code, out, err)
    loads_finite(workspace["run"])
    hypothesis.event(f"evaluate exit {code}")


@SETTINGS
@given(flags=flags_of(SUBMIT_FLAGS, SUBMIT_SWITCHES))
def test_every_generated_submit_command_keeps_the_contract(workspace, flags):
    jobs = workspace["jobs"]
    before = set(jobs.glob("*.json"))
    argv = ["submit", workspace["run"], "--backend", "aer", "--json", *flags]
    if "--images" not in flags:
        argv += ["--images", "2"]
    if "--shots" not in flags:
        argv += ["--shots", "50"]
    code, out, err = run_cli(argv)
    keeps_contract(argv, code, out, err)
    if code == 0:
        assert json.loads(out)["status"] == "done", argv
    else:  # validated before anything is written: no record of a refused job
        assert {p for p in jobs.glob("*.json")} == before, (argv, err)
    hypothesis.event(f"submit exit {code}")


# ----------------------------------------------------------------------------------------------
# hand-edited files


@st.composite
def json_edit(draw, paths: list[tuple[str, ...]]) -> tuple[tuple[str, ...], str, Any]:  # type: ignore[assignment]
    """Where (a key path), what (delete, set, or set inside a list) and the value."""
    return draw(st.sampled_from(paths)), draw(st.sampled_from(["delete", "set", "set-item"])), draw(JSON_VALUES)


def apply_edit(document: Any, edit: tuple[tuple[str, ...], str, Any]) -> Any:
    path, action, value = edit
    node = document
    for key in path[:-1]:
        if not isinstance(node, dict) or key not in node:
            return document
        node = node[key]
    last = path[-1]
    if not isinstance(node, dict):
        return document
    if action == "delete":
        node.pop(last, None)
    elif action == "set-item" and isinstance(node.get(last), list) and node[last]:
        node[last][0] = value
    else:
        node[last] = value
    return document


def config_paths(run: Path) -> list[tuple[str, ...]]:
    config = json.loads((run / "config.json").read_text())
    paths: list[tuple[str, ...]] = [(k,) for k in config]
    for k, v in config.items():
        if isinstance(v, dict):
            paths += [(k, inner) for inner in v]
    return sorted(paths)


def record_paths(workspace) -> list[tuple[str, ...]]:
    record = json.loads((workspace["jobs"] / f"{workspace['record']}.json").read_text())
    paths: list[tuple[str, ...]] = [(k,) for k in record]
    paths += [("options", k) for k in record.get("options", {})]
    return sorted(paths)


CONFIG_PATHS: list[tuple[str, ...]] = []  # filled from the workspace's own config on first use


def _config_edits(workspace) -> st.SearchStrategy:
    if not CONFIG_PATHS:
        CONFIG_PATHS.extend(config_paths(workspace["run"]))
    return json_edit(CONFIG_PATHS)


@SETTINGS
@given(data=st.data())
def test_a_hand_edited_config_is_read_or_refused_by_name(workspace, data):
    edit = data.draw(_config_edits(workspace))
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(workspace["run"], run)
        config = apply_edit(json.loads((run / "config.json").read_text()), edit)
        (run / "config.json").write_text(json.dumps(config))
        for argv in (
            ["evaluate", run, "--no-accuracy", "--json", "--limit", "8"],
            ["train", "--resume", run, "--no-progress"],
        ):
            code, out, err = run_cli(argv)
            keeps_contract([*argv, str(edit)], code, out, err)
            hypothesis.event(f"{argv[0]} exit {code}")
        loads_finite(run)


FILE_DAMAGE = st.sampled_from(["truncate-half", "truncate-1", "empty", "garbage-line", "nan-value", "bytes"])


def damage(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "truncate-half":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "truncate-1":
        path.write_bytes(raw[:-1])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage-line":
        path.write_bytes(raw + b"{not json\n")
    elif how == "nan-value":
        path.write_bytes(raw.replace(b'"loss": ', b'"loss": NaN, "was": ', 1))
    else:
        path.write_bytes(raw[:64] + bytes(range(256)) + raw[64 + 256 :])


@SETTINGS
@given(name=st.sampled_from(["metrics.jsonl", "checkpoint.pt", "eval_masks.npz", "config.json"]), how=FILE_DAMAGE)
def test_a_damaged_run_file_is_read_or_refused_by_name(workspace, name, how):
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(workspace["run"], run)
        damage(run / name, how)
        for argv in (
            ["evaluate", run, "--no-accuracy", "--json", "--limit", "8"],
            ["train", "--resume", run, "--no-progress"],
        ):
            code, out, err = run_cli(argv)
            keeps_contract([*argv, name, how], code, out, err)
            hypothesis.event(f"{name} {how}: {argv[0]} exit {code}")


RECORD_PATHS: list[tuple[str, ...]] = []


def edit_counts(saved: Any, how: str) -> Any:
    """The first counts mapping (bitstring keys) found: one count made negative, or one outcome
    given a bitstring of the wrong width."""
    if isinstance(saved, dict) and saved and all(isinstance(k, str) and set(k) <= {"0", "1"} for k in saved):
        key = next(iter(saved))
        if how == "negative":
            saved[key] = -5
        else:
            saved[key + "1"] = saved.pop(key)
        return saved
    children = saved.values() if isinstance(saved, dict) else saved if isinstance(saved, list) else []
    for child in children:
        before = json.dumps(child)
        edit_counts(child, how)
        if json.dumps(child) != before:
            break
    return saved


@SETTINGS
@given(data=st.data())
def test_a_hand_edited_job_record_is_scored_or_refused_by_name(workspace, data):
    if not RECORD_PATHS:
        RECORD_PATHS.extend(record_paths(workspace))
    edit = data.draw(json_edit(RECORD_PATHS))
    counts_damage = data.draw(st.sampled_from([None, "truncate-half", "empty", "garbage-line", "negative", "index"]))
    with tempfile.TemporaryDirectory() as tmp:
        jobs = Path(tmp) / "jobs"
        shutil.copytree(workspace["jobs"], jobs)
        path = jobs / f"{workspace['record']}.json"
        record = apply_edit(json.loads(path.read_text()), edit)
        path.write_text(json.dumps(record))
        counts = jobs / f"{workspace['record']}.result.json"
        if counts_damage in ("negative", "index"):
            counts.write_text(json.dumps(edit_counts(json.loads(counts.read_text()), counts_damage)))
        elif counts_damage is not None:
            damage(counts, counts_damage)
        previous = os.environ["QMAE_JOBS_DIR"]
        os.environ["QMAE_JOBS_DIR"] = str(jobs)
        try:
            argv = ["fetch", workspace["record"], "--json"]
            code, out, err = run_cli(argv)
            keeps_contract([*argv, str(edit), str(counts_damage)], code, out, err)
            hypothesis.event(f"fetch exit {code}")
            listing = ["jobs", "--json"]
            code, out, err = run_cli(listing)
            assert code == 0 and "Traceback" not in err, (edit, err)  # one bad record never hides the others
        finally:
            os.environ["QMAE_JOBS_DIR"] = previous


def test_the_contract_check_catches_a_nan_and_a_second_line():
    with pytest.raises(AssertionError):
        keeps_contract(["x", "--json"], 0, json.dumps({"fidelity": float("nan")}), "")
    with pytest.raises(AssertionError):
        keeps_contract(["x"], 2, "", "qmae: one\nqmae: two\n")
    keeps_contract(["x"], 2, "", "qmae: --limit must be a positive integer\n")


# ----------------------------------------------------------------------------------------------
# qmae study: every accepted case would train a grid (minutes), so the generator stops it where the
# training starts; what it checks is the other half of the contract: a refusal is one line and
# leaves no output directory behind (validated before anything is written).


class _ReachedTraining(BaseException):  # not an Exception: passes the CLI's own handlers
    pass


STUDY_FLAGS: dict[str, st.SearchStrategy[str]] = {
    "--seeds": st.one_of(COUNTS, GARBAGE),
    "--ceiling-seeds": st.one_of(COUNTS, GARBAGE),
    "--limit": st.one_of(COUNTS, GARBAGE),
    "--jobs": st.one_of(COUNTS, GARBAGE),
    "--executor": st.sampled_from(["local", "ray", "dask", ""]),
    "--address": st.sampled_from(["auto", "", "ray://nowhere:1"]),
    "--cpus-per-run": st.one_of(COUNTS, GARBAGE),
    "--dataset": st.sampled_from(["mnist", "imagenet", "folder:/no/such/dir", ""]),
    "--data-dir": st.sampled_from(["/no/such/dir", ""]),
}


@SETTINGS
@given(flags=flags_of(STUDY_FLAGS, ["--quick"]))
def test_every_generated_study_command_is_refused_before_writing_or_reaches_training(flags):
    import qmae_qiskit.studies.study as study_module

    def reached(*args, **kwargs):
        raise _ReachedTraining

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "study"
        argv = ["study", "--out", out, "--no-progress", *flags]
        original = study_module.run_parallel
        study_module.run_parallel = reached
        try:
            code, out_text, err = run_cli(argv)
        except _ReachedTraining:
            hypothesis.event("study reached training")
            return
        finally:
            study_module.run_parallel = original
        keeps_contract(argv, code, out_text, err)
        assert code == 2 and not out.exists(), (argv, "a refused study left its output directory", err)
        hypothesis.event("study refused")
