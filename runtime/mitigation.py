"""Error mitigation of sampled fidelities, every method in one place, as pure functions.

* **Readout** (:class:`ReadoutCalibration`): ``mthree`` calibrates the physical qubits the ISA
  circuit measures (on the same backend, in the same Batch on hardware) and corrects each image's
  counts into a quasi-distribution; the fidelity estimator then reads that instead of the raw
  counts. The calibration is saved next to the job record, so scoring again needs no new run.
* **ZNE** (:func:`fold_two_qubit_gates`, :func:`extrapolate`): the runtime's own ZNE
  (``resilience.zne``) belongs to the Estimator, and local testing mode ignores resilience
  options; our jobs use the Sampler. So noise is amplified the standard way, by *unitary folding*
  of every two-qubit gate ``G -> G (G^dagger G)^k`` (scale ``2k + 1``; Giurgica-Tiron et al.,
  2020, as in mitiq's ``fold_gates_at_random`` with all gates folded), applied to the ISA circuit
  after transpilation so the router cannot undo it, and the fidelities at scales ``1, 3, ...`` are
  extrapolated to 0 (exponential by default: a circuit whose errors are depolarizing-like decays
  geometrically in the number of gates).
* **CDR** (:func:`learned_map`): learned mitigation in the manner of Clifford data regression
  (Czarnik et al., 2021): training circuits whose exact values are known run in the same PUB, and
  a line fitted from their (mitigated) estimates to their exact values corrects the test images'.
* **Composition** (:func:`mitigated_estimates`): readout, then ZNE, then CDR, for every binding
  of a job (:data:`~qmae_qiskit.runtime.options.PROFILES` names the combination measured best in
  ``docs/hardware.md``).

Twirling and dynamical decoupling are options of the runtime Sampler (:mod:`.submission`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qiskit import QuantumCircuit

__all__ = [
    "Estimate",
    "learned_map",
    "mitigated_estimates",
    "EXTRAPOLATIONS",
    "parse_scales",
    "fold_two_qubit_gates",
    "extrapolate",
    "measured_qubits",
    "ReadoutCalibration",
    "CalibrationPlan",
    "calibration_plan",
    "CALIBRATION_METHOD",
]

EXTRAPOLATIONS = ("exponential", "linear")
MAX_FOLD_SCALE = 21

Estimate = tuple[float, float]  # (value, standard error)
Counts = Mapping[str, float]


def parse_scales(text: str | Sequence[int]) -> tuple[int, ...]:
    """ZNE noise scales from ``"1,3"`` or a sequence.

    Raises:
        ValueError: fewer than two scales, a scale that is not an odd integer >= 1, repeats, or no 1.
    """
    try:
        scales = tuple(int(s) for s in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        raise ValueError(
            f"noise scales are odd integers separated by commas, such as 1,3 or 1,3,5; got {text!r}"
        ) from None
    if (
        len(scales) < 2
        or len(set(scales)) != len(scales)
        or any(s < 1 or s % 2 == 0 for s in scales)
        or 1 not in scales
    ):
        raise ValueError(
            "ZNE needs at least two distinct odd noise scales including 1 (each two-qubit gate G becomes G "
            f"(G^dagger G)^k), got {text!r}"
        )
    if max(scales) > MAX_FOLD_SCALE:
        raise ValueError(
            f"a noise scale of {max(scales)} makes each two-qubit gate {max(scales)} gates deep; scales above "
            f"{MAX_FOLD_SCALE} give pure noise on any device: use 1,3 or 1,3,5"
        )
    return tuple(sorted(scales))


def fold_two_qubit_gates(circuit: QuantumCircuit, scale: int) -> QuantumCircuit:
    """``circuit`` with every two-qubit gate ``G`` replaced by ``G (G^dagger G)^((scale-1)/2)``.

    A barrier after each fold keeps the transpiler (or the backend) from cancelling the pairs.

    Raises:
        ValueError: ``scale`` is not an odd integer >= 1.
    """
    if scale < 1 or scale % 2 == 0:
        raise ValueError(f"a folding scale is an odd integer >= 1, got {scale}")
    if scale == 1:
        return circuit.copy()
    out = circuit.copy_empty_like()
    for inst in circuit.data:
        out.append(inst)
        op = inst.operation
        if op.num_qubits == 2 and op.name != "barrier" and not op.num_clbits:
            for _ in range((scale - 1) // 2):
                out.barrier(inst.qubits)
                out.append(op.inverse(), inst.qubits)
                out.barrier(inst.qubits)
                out.append(op, inst.qubits)
    return out


def extrapolate(
    scales: Sequence[int],
    values: Sequence[float],
    errors: Sequence[float],
    *,
    method: str = "exponential",
    seed: int = 0,
) -> tuple[float, float]:
    """The zero-noise value and its standard error (parametric bootstrap of the inputs' errors).

    ``exponential`` fits ``log F = a + b s`` (and falls back to ``linear`` when a value is not
    positive); ``linear`` fits ``F = a + b s``. Both by least squares over all scales.

    Raises:
        ValueError: an unknown method or mismatched lengths.
    """
    if method not in EXTRAPOLATIONS:
        raise ValueError(f"unknown extrapolation {method!r}; choose one of {', '.join(EXTRAPOLATIONS)}")
    s = np.asarray(scales, dtype=float)
    v = np.asarray(values, dtype=float)
    e = np.asarray(errors, dtype=float)
    if not (len(s) == len(v) == len(e)) or len(s) < 2:
        raise ValueError("extrapolation needs one value and one error per scale, for at least two scales")

    def fit(y: np.ndarray) -> float:
        if method == "exponential" and (y > 0).all():
            return float(np.exp(np.polyval(np.polyfit(s, np.log(y), 1), 0.0)))
        return float(np.polyval(np.polyfit(s, y, 1), 0.0))

    value = fit(v)
    rng = np.random.default_rng(seed)
    draws = [fit(v + e * rng.standard_normal(len(v))) for _ in range(200)]
    return value, float(np.std(draws))


def measured_qubits(circuit: QuantumCircuit) -> list[int]:
    """Physical qubit measured into each classical bit (index = classical bit), for mthree."""
    mapping: dict[int, int] = {}
    for inst in circuit.data:
        if inst.operation.name == "measure":
            mapping[circuit.find_bit(inst.clbits[0]).index] = circuit.find_bit(inst.qubits[0]).index
    return [mapping[k] for k in sorted(mapping)]


CALIBRATION_METHOD = "balanced"  # what mthree picks on hardware; explicit, so local testing mode measures the same


@dataclass(frozen=True)
class CalibrationPlan:
    """mthree's calibration of some physical qubits, as circuits to run.

    Attributes:
        qubits: the physical qubits measured (the job's ISA circuit's measured qubits).
        method: mthree's calibration method (``"balanced"``).
        shots: mthree's calibration shots (its own default unless asked: ``min(max_shots, 10000)``).
        circuits: the calibration circuits mthree builds, in its order.
        circuit_shots: shots per circuit, as mthree asks for them.
    """

    qubits: list[int]
    method: str
    shots: int
    circuits: list[Any]
    circuit_shots: list[int]

    def as_record(self) -> dict[str, Any]:
        """What a job record keeps to rebuild the calibration from counts later (no circuits)."""
        return {"qubits": self.qubits, "method": self.method, "shots": self.shots, "circuit_shots": self.circuit_shots}


class _Stop(Exception):
    """Raised by the recording backend instead of running: mthree records it as a job error."""


class _CountsBackend:
    """A stand-in for the backend that mthree's ``cals_from_system`` runs its circuits on.

    mthree builds its calibration circuits and reads their counts through ``backend.run``; with
    this stand-in the circuits run elsewhere (our executor Sampler, asynchronously, in the job's
    Batch) and mthree's own code turns their counts into the calibration. Recording: ``run``
    keeps the circuits and shots. Replaying: ``run`` hands back the counts, in order. Everything
    else (``configuration()``, ``name``, ...) is the real backend's.
    """

    def __init__(self, backend: Any, counts: Sequence[Mapping[str, int]] | None = None) -> None:
        self._backend, self._counts = backend, list(counts) if counts is not None else None
        self.runs: list[tuple[list[Any], int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def run(self, circuits: Sequence[Any], shots: int | None = None, **options: Any) -> Any:
        circuits = list(circuits)
        self.runs.append((circuits, int(shots or 0)))
        if self._counts is None:
            return _DoneJob(None)
        done = sum(len(c) for c, _ in self.runs[:-1])
        if done + len(circuits) > len(self._counts):
            raise ValueError(f"the calibration counts cover {len(self._counts)} circuits; mthree asked for more")
        return _DoneJob(self._counts[done : done + len(circuits)])


class _DoneJob:
    def __init__(self, counts: list[Mapping[str, int]] | None) -> None:
        self._counts = counts

    def result(self) -> _DoneJob:
        if self._counts is None:
            raise _Stop
        return self

    def get_counts(self) -> list[dict[str, int]]:
        return [dict(c) for c in self._counts or []]


def calibration_plan(
    backend: Any, qubits: Sequence[int], *, shots: int | None = None, method: str = CALIBRATION_METHOD
) -> CalibrationPlan:
    """mthree's calibration circuits for ``qubits`` on ``backend``, built by mthree itself (its
    public ``cals_from_system`` against a backend that records instead of running)."""
    import mthree

    # a qubit measured twice (a post-selected circuit's trash: mid-circuit, then with the data) is
    # calibrated once; the correction then maps each classical bit to its qubit
    qubits = list(dict.fromkeys(int(q) for q in qubits))
    recorder = _CountsBackend(backend)
    mit = mthree.M3Mitigation(recorder)
    mit.cals_from_system(qubits, shots=shots, method=method, async_cal=False)
    circuits = [c for group, _ in recorder.runs for c in group]
    circuit_shots = [n for group, n in recorder.runs for _ in group]
    return CalibrationPlan(list(qubits), method, int(mit.cal_shots), circuits, circuit_shots)


class ReadoutCalibration:
    """An ``mthree`` readout calibration of some physical qubits, saved to (and read from) a file.

    Args:
        path: the calibration file (JSON written by mthree).
    """

    def __init__(self, path: str | Path) -> None:
        import mthree

        self.path = Path(path)
        self._mit = mthree.M3Mitigation()
        self._mit.cals_from_file(str(self.path))

    @staticmethod
    def from_counts(
        backend: Any, plan: Mapping[str, Any], counts: Sequence[Mapping[str, int]], path: str | Path
    ) -> ReadoutCalibration:
        """Build the calibration with mthree's own code from the counts of its circuits (run
        however they were: our Sampler, in the job's Batch) and save it to ``path``."""
        import mthree

        mit = mthree.M3Mitigation(_CountsBackend(backend, counts))
        mit.cals_from_system(list(plan["qubits"]), shots=plan["shots"], method=plan["method"], async_cal=False)
        if mit.single_qubit_cals is None or any(mit.single_qubit_cals[q] is None for q in plan["qubits"]):
            raise ValueError(f"mthree built no calibration from the counts ({getattr(mit, '_job_error', None)})")
        mit.cals_to_file(str(path))
        return ReadoutCalibration(path)

    def correct(self, counts: Counts, qubits: Sequence[int]) -> tuple[dict[str, float], float]:
        """The readout-corrected quasi-probabilities of ``counts`` and the mitigation overhead
        (the factor by which the shot-noise variance grows)."""
        quasi = self._mit.apply_correction(dict(counts), list(qubits), return_mitigation_overhead=True)
        return {k: float(v) for k, v in quasi.items()}, float(quasi.mitigation_overhead)


def learned_map(
    training: Sequence[Estimate], targets: Sequence[float], estimates: Sequence[Estimate]
) -> list[Estimate]:
    """CDR-style correction: fit ``target = a * estimate + b`` on the training circuits, apply it.

    The error of each corrected value combines its own (scaled by ``a``) with the fit's residual
    spread.

    Args:
        training: the training circuits' estimates.
        targets: their exact values.
        estimates: the estimates to correct.
    """
    x = np.array([v for v, _ in training])
    y = np.asarray(targets, dtype=float)
    a, b = np.polyfit(x, y, 1)
    residual = float(np.std(y - (a * x + b), ddof=2)) if len(x) > 2 else 0.0
    return [(float(a * v + b), float(np.hypot(a * e, residual))) for v, e in estimates]


def mitigated_estimates(
    by_scale: Mapping[int, Sequence[Counts]],
    count: int,
    *,
    estimate: Callable[[Counts], Estimate],
    correct: Callable[[Counts], tuple[Counts, float]] | None = None,
    extrapolation: str = "exponential",
    cdr_targets: Sequence[float] | None = None,
) -> list[Estimate]:
    """The mitigated estimate of each of the first ``count`` bindings of a job.

    Readout first (``correct`` maps counts to a quasi-distribution and the variance overhead), then
    ZNE (when counts of several noise scales are given), then CDR (when ``cdr_targets`` are given:
    the bindings after the first ``count`` are the training circuits, in the targets' order).

    Args:
        by_scale: counts per noise scale, per binding (scale 1 always present).
        count: how many leading bindings are the test images.
        estimate: the variant's estimator, counts -> (value, stderr).
        correct: readout correction, or ``None`` for none.
        extrapolation: the ZNE fit (:data:`EXTRAPOLATIONS`).
        cdr_targets: exact values of the training circuits, or ``None`` for no CDR.
    """

    def readout(counts: Counts) -> Estimate:
        value, err = estimate(counts)
        if correct is None:
            return value, err
        quasi, overhead = correct(counts)
        return estimate(quasi)[0], err * float(np.sqrt(max(overhead, 1.0)))

    scales = sorted(by_scale)

    def one(i: int) -> Estimate:
        if len(scales) == 1:
            return readout(by_scale[scales[0]][i])
        per_scale = [readout(by_scale[s][i]) for s in scales]
        return extrapolate(scales, [v for v, _ in per_scale], [e for _, e in per_scale], method=extrapolation)

    estimates = [one(i) for i in range(count)]
    if cdr_targets:
        training = [one(count + k) for k in range(len(cdr_targets))]
        estimates = learned_map(training, cdr_targets, estimates)
    return estimates
