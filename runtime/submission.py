"""Where the job is submitted: sampled inference jobs on IBM Quantum (or its local testing mode).

``submit`` checks everything it can before a record exists, writes the job record
(:mod:`.records`) atomically before it sends anything, and again with the provider's job id
before it waits, so an interrupted submit loses nothing: ``fetch`` (:mod:`.retrieval`) completes
it later. All images are parameter bindings of one ISA circuit (:mod:`.transpile`): one PUB per
ZNE noise scale, run by :mod:`.execution`.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import torch

from ..circuits.features import FEATURES, measurement_bases
from ..circuits.fidelity import (
    POSTSELECTED_VARIANTS,
    RECONSTRUCTION,
    RECONSTRUCTION_POSTSELECT,
    RECONSTRUCTION_POSTSELECT_FLAG,
)
from ..masking import mask_patches
from ..model import QMAE, load_model
from ..model_circuits import template
from ..options import OptionError
from ..runs import data_for_run, saved_evaluation_masks
from .backends import get_backend, is_local
from .execution import complete, first_line, max_shots, run_pubs
from .options import PROFILES, SubmitOptions
from .records import JobError, JobRecord, checkpoint_sha256, record_images, save_record
from .transpile import isa_circuit, mid_circuit_measurements, success_probability, two_qubit_gates

log = logging.getLogger(__name__)

__all__ = ["submit", "resolve_options"]


def submit(
    run_dir: str | os.PathLike,
    *,
    backend: str,
    options: SubmitOptions | None = None,
    profile: str | None = None,
    wait: bool = True,
    **overrides: Any,
) -> JobRecord:
    """Submit inference on the first test images of a trained run.

    Args:
        run_dir: a trained run.
        backend: ``aer``, a fake device (``fake_fez``) or a real one (``ibm_fez``).
        options: what to run (:class:`~qmae_qiskit.runtime.SubmitOptions`), or
        profile: a named starting point (:data:`~qmae_qiskit.runtime.PROFILES`; ``"best"`` is the
            measured best on FakeFez); either way
        overrides: :class:`~qmae_qiskit.runtime.SubmitOptions` fields as keywords (``shots=8192``).
            A run trained with ``objective="postselect"`` is scored on its kept shots (variant
            ``postselect``) unless a variant is given.
        wait: wait for the result and save the counts.

    Returns:
        The job record (``status`` ``"done"`` after waiting, else ``"submitted"``).

    Raises:
        OptionError: a bad option (named), or more images or shots than there are.
        ValueError: a circuit wider than the backend.
        BackendError: unknown backend, no account, no network.
        JobError: the job failed or was cancelled (recorded).
    """
    opts = resolve_options(options, profile, overrides)
    run_dir = Path(run_dir).resolve()
    model = load_model(run_dir)
    given = overrides.get("variant") or (options.variant if options else None)
    plain = "compute_uncompute" if model.ancillas else "reset"  # ancillas: no SWAP-test form
    variant = given or ("postselect" if model.objective == "postselect" else opts.variant or plain)
    if opts.reconstruct:  # a post-selected model is read off its kept shots (flagged: no mid-circuit measurement)
        if model.objective != "postselect":
            variant = RECONSTRUCTION
        else:
            variant = RECONSTRUCTION_POSTSELECT_FLAG if variant == "postselect_flag" else RECONSTRUCTION_POSTSELECT
    if opts.features:  # the latent qubits read in Pauli bases (issue 23): its own circuit
        variant = FEATURES
        template(model, FEATURES)  # a run it cannot measure says so before anything is written
    layers = model.embedding_layers if opts.embedding_layers is None else opts.embedding_layers
    opts = opts.replace(variant=variant, embedding_layers=layers)
    the_backend = get_backend(backend)
    _check_fits(run_dir, model, the_backend, opts)  # everything that can be checked before a record exists
    record = _new_record(run_dir, model, backend, is_local(the_backend), opts, profile)
    _exact_values(record, model, opts)
    save_record(record)  # before anything can fail remotely: `fetch` can always complete it
    try:
        job, calibration_job = run_pubs(record, model.set_embedding(layers), the_backend)
    except Exception as exc:  # refused by the service or the simulator: the record says so, not "submitting"
        record.status, record.error = "failed", f"{type(exc).__name__}: {first_line(exc)}"
        save_record(record)
        raise JobError(f"submitting job {record.record_id} failed: {record.error}") from None
    record.job_id, record.status = job.job_id(), "submitted"
    record.calibration_job_id = calibration_job.job_id() if calibration_job is not None else None
    save_record(record)
    if wait:
        try:
            complete(record, job, calibration_job)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(_stopped_waiting(record)) from None
    return record


def _stopped_waiting(record: JobRecord) -> str:
    """What Ctrl-C while waiting says: the record id and how to finish the job."""
    if record.local:  # a local simulation lives in this process: it stops with it
        return (
            f"stopped waiting; the local simulation of record {record.record_id} stopped with it: submit again "
            "(records of local jobs cannot be fetched later)"
        )
    return (
        f"stopped waiting; job {record.job_id} keeps running on {record.backend}: complete record "
        f"{record.record_id} with: qmae fetch {record.record_id}"
    )


def resolve_options(options: SubmitOptions | None, profile: str | None, overrides: dict[str, Any]) -> SubmitOptions:
    """The options a job runs with: ``options`` or the profile (or the defaults), with
    ``overrides`` on top, validated.

    Raises:
        OptionError: an unknown profile or option, a bad value, or both ``options`` and ``profile``.
    """
    if options is not None and profile is not None:
        raise OptionError("pass options= or {0}, not both (PROFILES[name].replace(...) combines them)", "profile")
    if profile is not None and profile not in PROFILES:
        raise OptionError(f"unknown {{0}} {profile!r}; choose one of {', '.join(PROFILES)}", "profile")
    unknown = sorted(set(overrides) - SubmitOptions.names())
    if unknown:
        raise OptionError(f"unknown submit option(s) {unknown}; the options are SubmitOptions' fields")
    base = options or (PROFILES[profile] if profile else SubmitOptions())
    given = {k: v for k, v in overrides.items() if v is not None}
    resolved = base.replace(**given)
    if (resolved.reconstruct or resolved.features) and profile is not None:
        # a profile's fidelity mitigation has no reconstruction or features form; its embedding and readout stay
        plain = SubmitOptions()
        resolved = resolved.replace(**{k: getattr(plain, k) for k in ("zne", "cdr", "variant") if k not in given})
    resolved.validate()
    return resolved


NOISE_FLOOR = 1e-3  # below this estimated success probability a result is mostly noise (docs/hardware.md)


def _has_gate_durations(backend: Any) -> bool:
    try:
        backend.target.durations().get("sx", [0])
    except Exception:  # Qiskit's TranspilerError: no duration recorded
        return False
    return True


def _check_fits(run_dir: Path, model: QMAE, backend: Any, opts: SubmitOptions) -> None:
    """The images exist, the backend takes the shots, and the circuit transpiles onto it."""
    if opts.simulator_method != "automatic" and not is_local(backend):
        raise OptionError(
            f"{{0}} {opts.simulator_method} chooses how Aer simulates a local backend; {backend.name} is a device: "
            "drop it",
            "simulator_method",
        )
    available = len(data_for_run(run_dir, split="test", data_dir=opts.data_dir).images)
    if opts.images > available:
        raise OptionError(
            f"{{0}} {opts.images} but the test split has {available} images; ask for at most {available}", "images"
        )
    if opts.dynamical_decoupling and not _has_gate_durations(backend):
        raise OptionError(
            f"{{0}} pads idle qubits with pulses timed from the gate durations, and {backend.name} has none; drop "
            "{0}, or use a device or a fake device (fake_fez)",
            "dynamical_decoupling",
        )
    if opts.cdr:
        training = len(data_for_run(run_dir, split="train", data_dir=opts.data_dir).images)
        if opts.cdr > training:
            raise OptionError(
                f"{{0}} {opts.cdr} asks for more training circuits than the run's training split has images "
                f"({training}); ask for at most {training}",
                "cdr",
            )
    limit = max_shots(backend)
    if opts.shots > limit:
        raise OptionError(
            f"{{0}} {opts.shots} is more than {backend.name} runs per circuit ({limit}); ask for fewer", "shots"
        )
    with model.embedding(opts.embedding_layers):  # transpiles (cached); checks the width
        isa = isa_circuit(model, backend, opts.variant or "reset", optimization_level=opts.optimization_level)
    gates = two_qubit_gates(isa)
    success = success_probability(isa, backend)
    log.warning(
        "%s circuit on %s: %d two-qubit gates, depth %d%s",
        opts.variant,
        backend.name,
        gates,
        isa.depth(),
        "" if success is None else f", estimated success probability {success:.2g}",
    )
    if success is not None and success < NOISE_FLOOR:
        log.warning(
            "at an estimated success probability of %.2g the result will be mostly noise; a shallower circuit: "
            "--embedding-layers 16 on a run trained with --pairs line (what --profile best assumes)",
            success,
        )
    if opts.simulator_method == "density_matrix" and mid_circuit_measurements(isa):
        log.warning(
            "--simulator-method density_matrix with the mid-circuit measurements of %s runs one density matrix per "
            "shot (slower than statevector); --variant postselect_flag measures the trash at the end instead",
            opts.variant,
        )
    if is_local(backend):
        per_image = len(measurement_bases(len(model.latent_indices), opts.feature_kind)) if opts.features else 1
        if getattr(backend, "target", None) is None or backend.name.startswith("aer"):  # Aer itself: no noise
            log.warning(
                "simulating %d circuits x %d shots locally on Aer (no noise)", opts.images * per_image, opts.shots
            )
        else:
            log.warning(
                "simulating %d circuits x %d shots locally with %s's noise: minutes per image for circuits this deep",
                opts.images * per_image,
                opts.shots,
                backend.name,
            )


def _new_record(
    run_dir: Path, model: QMAE, backend: str, local: bool, opts: SubmitOptions, profile: str | None
) -> JobRecord:
    masks = mask_patches(saved_evaluation_masks(run_dir, model, opts.images), model.patch_size).tolist()
    if opts.features and not opts.masked_features:  # the clean images: no patch masked
        masks = [[] for _ in masks]
    return JobRecord(
        record_id=time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8],
        backend=backend,
        local=local,
        variant=opts.variant or "reset",
        run_dir=str(run_dir),
        checkpoint_sha256=checkpoint_sha256(run_dir),
        split="test",
        indices=list(range(opts.images)),
        masks=masks,
        shots=opts.shots,
        num_qubits=model.num_qubits,
        data_dir=opts.data_dir,
        options=opts.replace(profile=profile),
        exact=[],
    )


def _exact_values(record: JobRecord, model: QMAE, opts: SubmitOptions) -> None:
    """What the exact engine says of the record's circuits: under the full embedding (what the
    user wants), under the one that ran, the kept fraction, and the CDR training circuits'."""
    postselected = record.variant in POSTSELECTED_VARIANTS or record.variant in (
        RECONSTRUCTION_POSTSELECT,
        RECONSTRUCTION_POSTSELECT_FLAG,
    )
    imgs, msks = record_images(record, model)
    if record.variant == FEATURES:  # each image's exact features, under the full embedding and the one that runs
        kind = opts.feature_kind
        record.bases = measurement_bases(len(model.latent_indices), kind)
        with model.embedding(None):
            record.exact = model.features(imgs, msks, kind=kind).double().tolist()
        if opts.embedding_layers is not None:
            with model.embedding(opts.embedding_layers):
                record.exact_embedded = model.features(imgs, msks, kind=kind).double().tolist()
        return

    def values(images: torch.Tensor, masks: torch.Tensor) -> list[Any]:
        with torch.no_grad():
            if opts.reconstruct:
                return model.reconstruct(images, masks, postselect=postselected).square().flatten(1).tolist()
            return model.fidelity(images, masks, postselect=postselected).tolist()

    with model.embedding(None):
        record.exact = values(imgs, msks)
        if postselected:
            with torch.no_grad():
                record.exact_keep = model.keep_probability(imgs, msks).tolist()
    if opts.embedding_layers is not None:
        with model.embedding(opts.embedding_layers):
            record.exact_embedded = values(imgs, msks)
    if opts.cdr:
        generator = torch.Generator().manual_seed(opts.seed or 0)
        train_size = len(data_for_run(record.run_dir, split="train", data_dir=record.data_dir).images)
        record.training_indices = torch.randperm(train_size, generator=generator)[: opts.cdr].tolist()
        record.training_masks = mask_patches(
            model.random_mask(opts.cdr, generator=generator), model.patch_size
        ).tolist()
        training = record_images(record, model, training=True)
        with model.embedding(opts.embedding_layers):  # of the circuit that runs, then under the full embedding
            record.training_exact = values(*training)
        with model.embedding(None):
            record.training_exact_full = values(*training)
