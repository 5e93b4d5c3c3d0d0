"""A job record's options are a SubmitOptions: records of every version read back typed, written
with the keys every version wrote, and a damaged options object refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qmae_qiskit.runtime.options import SubmitOptions
from qmae_qiskit.runtime.records import JobError, load_record, record_files, save_record

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "hardware" / "jobs"


@pytest.fixture
def jobs(tmp_path, monkeypatch):
    monkeypatch.setenv("QMAE_JOBS_DIR", str(tmp_path / "jobs"))
    (tmp_path / "jobs").mkdir()
    return tmp_path / "jobs"


def test_committed_records_of_an_earlier_version_read_as_submit_options(jobs):
    """The records in docs/hardware/jobs predate the features options and the typed record: they
    read back typed, the record's own fields filled in, the options they predate at their defaults."""
    originals = sorted(p for p in COMMITTED.glob("*.json") if not p.name.endswith((".result.json", ".m3.json")))
    assert len(originals) >= 10
    for path in originals:
        shutil.copy(path, jobs / path.name)
    for path in originals:
        data = json.loads(path.read_text())
        record = load_record(data["record_id"])
        assert isinstance(record.options, SubmitOptions)
        assert record.options.shots == record.shots and record.options.images == len(record.indices)
        assert record.options.optimization_level == data["options"]["optimization_level"]
        assert record.options.profile == data["options"]["profile"]
        assert record.options.features is False and record.options.simulator_method == "automatic"
        save_record(record)  # written back: the same keys, the predated options added with their defaults
        again = json.loads((jobs / path.name).read_text())["options"]
        assert set(data["options"]) <= set(again) and "shots" not in again
        assert {k: again[k] for k in data["options"]} == data["options"]
    assert len(record_files()) == len(originals)


def test_a_damaged_options_object_is_refused_naming_the_key(jobs):
    path = next(p for p in COMMITTED.glob("*.json") if not p.name.endswith((".result.json", ".m3.json")))
    data = json.loads(path.read_text())
    data["options"]["optimization_level"] = 7
    (jobs / path.name).write_text(json.dumps(data))
    with pytest.raises(JobError, match=r"damaged: options.optimization_level must be one of 0, 1, 2, 3, got 7"):
        load_record(data["record_id"])


def test_reading_options_as_a_dict_still_works_with_a_warning(jobs):
    options = SubmitOptions(shots=100, readout_mitigation=True)
    with pytest.warns(DeprecationWarning, match="record.options.readout_mitigation"):
        assert options["readout_mitigation"] is True
    with pytest.warns(DeprecationWarning):
        assert options.get("zne") is None
