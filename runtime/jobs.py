"""The life of a hardware job, in one import: submit, list, fetch, score again.

The code lives in files named for each stage (records at the bottom, nothing points back up)::

    records.py     JobRecord and the jobs directory: atomic records, counts, calibrations
    submission.py  submit(): the record, the ISA PUBs, the executor Sampler in a Batch
    retrieval.py   fetch(), list_jobs(): wait, look up, complete an interrupted submit
    scoring.py     FetchResult, rescore(): counts -> mitigated estimates next to the exact values
    mitigation.py  readout (mthree), ZNE, CDR and PROFILES, as pure functions

``from qmae_qiskit.runtime.jobs import submit, fetch`` keeps working for scripts written against
the single-module layout.
"""

from .mitigation import PROFILES
from .records import ENV_JOBS_DIR, JobError, JobRecord, jobs_dir, load_record
from .retrieval import fetch, list_jobs
from .scoring import FetchResult, rescore
from .submission import submit

__all__ = [
    "ENV_JOBS_DIR",
    "FetchResult",
    "JobError",
    "JobRecord",
    "PROFILES",
    "fetch",
    "jobs_dir",
    "list_jobs",
    "load_record",
    "rescore",
    "submit",
]
