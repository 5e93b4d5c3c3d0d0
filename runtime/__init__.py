"""Everything that talks to IBM Quantum, or to its local testing mode (Aer and fake devices).

Installed as ``qmae_qiskit.runtime``. A trained run becomes hardware inference in four steps::

    get_backend("fake_fez")             backends.py    aer, fake devices, real ones via your account
    transpile_report(model, backend)    transpile.py   ISA circuits (cached) and what they cost
    record = submit(run, backend=...)   submission.py  a job record, then sampled PUBs in a Batch
                                        (options.py: SubmitOptions and the PROFILES; execution.py:
                                        the Sampler, shared with fetch)
    result = fetch(record.job_id)       retrieval.py   counts back, mitigated (mitigation.py) and
                                                       scored against the exact engine (scoring.py)

``list_jobs`` shows the records on disk (records.py), ``rescore`` scores finished counts again with
less mitigation. The ``qmae circuit / submit / jobs / fetch`` commands (qmae_qiskit/commands/) call these.
"""

from .backends import BackendError, fake_backend_names, get_backend, is_local, runtime_service
from .options import PROFILES, SubmitOptions
from .probing import DeviceProbe, probe_job
from .records import JobError, JobRecord, jobs_dir, load_record
from .retrieval import fetch, list_jobs
from .scoring import FetchResult, rescore
from .submission import submit
from .transpile import TranspileReport, isa_circuit, report_table, transpile_report

__all__ = [
    "DeviceProbe",
    "probe_job",
    "BackendError",
    "FetchResult",
    "JobError",
    "JobRecord",
    "PROFILES",
    "SubmitOptions",
    "TranspileReport",
    "fake_backend_names",
    "fetch",
    "get_backend",
    "is_local",
    "isa_circuit",
    "jobs_dir",
    "list_jobs",
    "load_record",
    "report_table",
    "rescore",
    "runtime_service",
    "submit",
    "transpile_report",
]
