"""One home per option: each is declared once (model.ModelConfig, training.TrainConfig,
runtime.SubmitOptions) and the command line, validation, config.json, QMAE(...) and the README's
list all follow from that declaration."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path

import pytest

from qmae_qiskit import QMAE, ModelConfig, OptionError, TrainConfig, build_model
from qmae_qiskit.cli import _parser, main
from qmae_qiskit.options import FLAG, add_flags, option
from qmae_qiskit.runtime import PROFILES, SubmitOptions

ROOT = Path(__file__).resolve().parents[1]


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}


def readme_flag_problems(readme: str, flags: set[str]) -> list[str]:
    """What the README's list of ``qmae train`` options gets wrong about ``flags``."""
    block = readme.split("Options of `qmae train`", 1)[1].split("Other commands:", 1)[0]
    listed = set(re.findall(r"`(--[a-z][a-z0-9-]*)", block))
    return [f"README lists {f}, which qmae train does not have" for f in sorted(listed - flags)] + [
        f"README does not list {f}" for f in sorted(flags - listed)
    ]


def test_the_readme_lists_every_train_flag_and_no_other():
    problems = readme_flag_problems((ROOT / "README.md").read_text(), _flags(_subparser("train")))
    assert not problems, "; ".join(problems)


def test_train_flags_are_the_declared_options():
    flags = _flags(_subparser("train"))
    declared = {"--" + n.replace("_", "-") for n in TrainConfig.flat_names() if n != "trash_qubits"}
    assert flags == declared | {"--out", "--resume", "--no-progress"}
    help_text = _subparser("train").format_help()
    assert "(default 0.02)" in help_text and "{constant,cosine}" in help_text  # from the declaration, not retyped


def test_a_new_model_option_is_one_field():
    """A dummy field on the model configuration reaches the flags, validation, JSON and the README check."""

    @dataclasses.dataclass(frozen=True)
    class WithKnob(ModelConfig):
        dummy_knob: int = option(3, "a knob added in one place", minimum=0)

    parser = argparse.ArgumentParser()
    add_flags(parser, WithKnob)
    assert parser.parse_args(["--dummy-knob", "5"]).dummy_knob == 5
    assert "a knob added in one place (default 3)" in parser.format_help()
    assert WithKnob(dummy_knob=4).to_dict()["dummy_knob"] == 4
    assert WithKnob.from_dict({"dummy_knob": 7}).dummy_knob == 7
    with pytest.raises(OptionError, match="dummy_knob must be an integer >= 0, got -1"):
        WithKnob(dummy_knob=-1).validate()
    problems = readme_flag_problems((ROOT / "README.md").read_text(), _flags(_subparser("train")) | {"--dummy-knob"})
    assert problems == ["README does not list --dummy-knob"]


def test_errors_name_the_option_in_the_callers_vocabulary(tmp_path, capsys):
    with pytest.raises(OptionError, match="^lr must be a positive number, got -1"):
        TrainConfig.of(lr=-1).validate()
    with pytest.raises(OptionError) as caught:
        TrainConfig.of(batch_size=0).validate()
    assert caught.value.render(FLAG) == "--batch-size must be a positive integer, got 0"
    assert main(["train", "--out", str(tmp_path / "r"), "--lr", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "qmae: error: --lr must be a positive number, got -1.0"
    with pytest.raises(OptionError, match="^layers must be a positive integer, got True"):
        QMAE(layers=True)
    with pytest.raises(OptionError, match="keep_weight holds the kept fraction of objective postselect"):
        TrainConfig.of(keep_weight=0.1).validate()
    with pytest.raises(OptionError, match=r"unknown training option\(s\) \['warp'\]"):
        TrainConfig.of(warp=1)
    with pytest.raises(OptionError, match="config.json options.epochs must be a positive integer, got 'three'"):
        TrainConfig.from_dict({"epochs": "three"}, where="config.json options")


def test_qmae_is_built_from_its_config():
    config = ModelConfig(image_size=4, patch_size=(2, 2), layers=2, token="per-patch", latent_qubits=2)
    model = QMAE(config, seed=0)
    assert model.config == config and (model.layers, model.tokens, model.trash_qubits) == (2, "per-patch", (2, 3))
    same = QMAE(image_size=4, patch_size="2x2", layers=2, token="per-patch", latent_qubits=2, seed=0)
    assert same.config == config and same.theta.equal(model.theta)
    assert QMAE(config, layers=1).layers == 1  # keywords override the config
    assert type(build_model(config.replace(model="qae", token="shared"))).__name__ == "QAE"
    with pytest.raises(OptionError, match="use QAE"):
        QMAE(config.replace(model="qae"))
    resolved = ModelConfig.from_dict(model.architecture())
    assert resolved.trash_qubits == (2, 3) and len(resolved.pairs) == 6 and resolved.resolved() == resolved


def test_train_config_is_flat_on_disk_and_nested_in_python():
    config = TrainConfig.of(layers=2, epochs=1, objective="postselect", keep_weight=0.1)
    assert config.architecture.layers == 2 and config.epochs == 1
    flat = config.to_dict()
    assert flat["layers"] == 2 and flat["epochs"] == 1 and "architecture" not in flat
    assert TrainConfig.from_dict(json.loads(json.dumps(flat))) == config
    old = {"model": "qmae", "patch_size": "8x8", "token": "per-patch", "epochs": 2}  # as older runs wrote it
    assert TrainConfig.from_dict(old).architecture.patch_size == (8, 8)


def test_every_committed_run_config_still_reads():
    configs = sorted((ROOT / "docs").rglob("config.json"))
    assert len(configs) > 100
    for path in configs:
        saved = json.loads(path.read_text())
        arch = ModelConfig.from_dict(saved["architecture"], where=str(path))
        options = TrainConfig.from_dict(saved["options"], where=str(path))
        assert arch.model == options.architecture.model


def test_submit_options_and_profiles():
    best = PROFILES["best"]
    assert isinstance(best, SubmitOptions) and best.readout_mitigation and best.cdr == 16
    assert best.replace(shots=8192).shots == 8192 and best.shots == 4096
    with pytest.raises(dataclasses.FrozenInstanceError):
        best.shots = 1  # type: ignore[misc]
    assert SubmitOptions(zne="1,3").zne == (1, 3)
    with pytest.raises(OptionError, match="zne: a noise scale of 2001"):
        SubmitOptions(zne="1,2001")
    with pytest.raises(OptionError, match="zne and cdr apply to fidelity circuits"):
        SubmitOptions(reconstruct=True, cdr=4).validate()
    submit = _subparser("submit")
    profile = next(a for a in submit._actions if "--profile" in a.option_strings)
    assert tuple(profile.choices) == tuple(PROFILES)
    assert {"--dd", "--zne", "--cdr", "--shots"} <= _flags(submit)
    record = best.record_options("best")
    assert record["profile"] == "best" and "shots" not in record and record["cdr_target"] == "full"


def test_shared_flags_come_from_one_declaration_in_every_command():
    """--data-dir, --json, --no-progress and the executor flags: one declaration each, the same help
    wherever a command takes them, read back as their Options type."""
    from qmae_qiskit.cli import _parser
    from qmae_qiskit.options import DataOptions
    from qmae_qiskit.studies.experiments import ExecutorOptions

    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    helps: dict[str, set[str]] = {}
    for command in sub.choices.values():
        for action in command._actions:
            for flag in action.option_strings:
                if flag in ("--data-dir", "--json", "--no-progress", "--executor", "--jobs", "--cpus-per-run"):
                    helps.setdefault(flag, set()).add(action.help)
    assert helps.keys() >= {"--data-dir", "--no-progress", "--executor", "--jobs", "--cpus-per-run"}
    assert all(len(texts) == 1 for flag, texts in helps.items() if flag != "--json"), helps  # bench's --json: a path
    args = parser.parse_args(["study", "--out", "s", "--executor", "ray", "--jobs", "3", "--cpus-per-run", "2"])
    assert ExecutorOptions.from_args(args) == ExecutorOptions(executor="ray", jobs=3, cpus_per_run=2)
    assert DataOptions.from_args(parser.parse_args(["evaluate", "run", "--limit", "5"])).limit == 5


def test_a_study_takes_its_executor_as_options_or_as_the_older_keywords():
    from qmae_qiskit.studies.experiments import ExecutorOptions, executor_options

    assert executor_options(ExecutorOptions(jobs=2)).jobs == 2
    assert executor_options("local", jobs=2) == ExecutorOptions(jobs=2)
    with pytest.raises(ValueError, match="inside executor=ExecutorOptions"):
        executor_options(ExecutorOptions(), jobs=2)
    with pytest.raises(ValueError, match="--address names a Ray cluster"):
        executor_options(ExecutorOptions(address="auto"))
