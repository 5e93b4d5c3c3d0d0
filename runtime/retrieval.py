"""Getting a job's counts back: waiting, looking it up, completing an interrupted submit.

A real job is found through ``QiskitRuntimeService.job(id)``, or by its tag when the id never came
back; a local one (Aer or a fake device) has nothing to look up and is run again from its record,
seeded, which gives the same counts. The counts are saved next to the record and scored
(:mod:`.scoring`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from .backends import get_backend, runtime_service
from .execution import complete, run_pubs
from .records import (
    JobError,
    JobRecord,
    check_indices,
    counts_path,
    load_record,
    model_for,
    read_records,
    save_record,
    saved_counts,
)
from .scoring import FetchResult, composite_accuracy, score

__all__ = ["fetch", "list_jobs"]


def list_jobs(*, refresh: bool = True) -> list[JobRecord]:
    """Every record in the jobs directory, newest first, with the provider's status where reachable."""
    records = read_records()
    for record in records:
        if refresh and not record.local and record.status == "submitted" and record.job_id:
            try:
                record.status = f"submitted ({runtime_service().job(record.job_id).status()})"
            except Exception:
                record.status = "submitted (status unavailable offline)"
    return records


def _find_remote_job(service: Any, record: JobRecord, *, calibration: bool = False) -> Any:
    """The record's job (or its calibration job) on IBM Quantum: by id, or by tag if the id never came back."""
    job_id = record.calibration_job_id if calibration else record.job_id
    if job_id:
        return service.job(job_id)
    tag = f"qmae:{record.record_id}" + (":calibration" if calibration else "")
    jobs = service.jobs(job_tags=[tag], limit=1)
    if not jobs:
        raise JobError(f"record {record.record_id} was interrupted before IBM Quantum accepted the job; submit again")
    return jobs[0]


def fetch(job_or_record_id: str, *, png: str | os.PathLike | None = None, accuracy: bool = False) -> FetchResult:
    """Get a job's counts (waiting if needed) and score them against the exact simulator.

    Args:
        job_or_record_id: the provider's job id or our record id.
        png: where to write the reconstructed images (reconstruction jobs).
        accuracy: reconstruction jobs: also the ResNet18 accuracy of the composites from counts,
            next to the exact composites' and the mean-image fill's (``composite_accuracy``).

    Raises:
        JobError: unknown job, failed or cancelled job.
        BackendError: the job is remote and IBM Quantum cannot be reached (the record stays).
    """
    record = load_record(job_or_record_id)
    if record.status in ("failed", "cancelled"):
        raise JobError(f"job {record.job_id or record.record_id} {record.status}: {record.error}")
    check_indices(record)
    if not counts_path(record).is_file():
        if record.local:  # nothing to look up: run the recorded, seeded PUBs again
            job, calibration_job = run_pubs(record, model_for(record), get_backend(record.backend))
            record.job_id = record.job_id or job.job_id()
        else:
            service = runtime_service()
            job = _find_remote_job(service, record)
            calibration_job = _find_remote_job(service, record, calibration=True) if record.calibration else None
            record.job_id = job.job_id()
        save_record(record)
        complete(record, job, calibration_job)
    counts = saved_counts(record)
    result = score(record, counts, png)
    if accuracy:
        result = dataclasses.replace(result, composite_accuracy=composite_accuracy(record, counts[1]))
    return result
