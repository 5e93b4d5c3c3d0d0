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
  of a job; :data:`PROFILES` names the combination measured best in ``docs/hardware.md``.

Twirling and dynamical decoupling are options of the runtime Sampler (:mod:`.submission`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qiskit import QuantumCircuit

__all__ = [
    "PROFILES",
    "Estimate",
    "learned_map",
    "mitigated_estimates",
    "EXTRAPOLATIONS",
    "parse_scales",
    "fold_two_qubit_gates",
    "extrapolate",
    "measured_qubits",
    "ReadoutCalibration",
]

EXTRAPOLATIONS = ("exponential", "linear")

Estimate = tuple[float, float]  # (value, standard error)
Counts = Mapping[str, float]

PROFILES: dict[str, dict[str, Any]] = {
    # chosen from the measured table in docs/hardware.md (benchmarks/hardware.py)
    # (line encoder run: 266 two-qubit gates on FakeFez, mean absolute error 0.036); ZNE added nothing on top of CDR
    "best": {
        "variant": "compute_uncompute",
        "embedding_layers": 16,
        "readout_mitigation": True,
        "zne": None,
        "cdr": 16,
        "cdr_target": "full",
        "twirling": False,
    },
}


def parse_scales(text: str | Sequence[int]) -> tuple[int, ...]:
    """ZNE noise scales from ``"1,3"`` or a sequence.

    Raises:
        ValueError: fewer than two scales, a scale that is not an odd integer >= 1, repeats, or no 1.
    """
    try:
        scales = tuple(int(s) for s in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        raise ValueError(
            f"--zne takes odd noise scales separated by commas, such as 1,3 or 1,3,5; got {text!r}"
        ) from None
    if (
        len(scales) < 2
        or len(set(scales)) != len(scales)
        or any(s < 1 or s % 2 == 0 for s in scales)
        or 1 not in scales
    ):
        raise ValueError(
            "--zne needs at least two distinct odd noise scales including 1 (each two-qubit gate G becomes G "
            f"(G^dagger G)^k), got {text!r}"
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
    def calibrate(
        backend: Any, qubits: Sequence[int], path: str | Path, *, shots: int = 4096, mode: Any = None
    ) -> ReadoutCalibration:
        """Run mthree's calibration circuits on ``backend`` (in ``mode``, a runtime Batch, on
        hardware) and save them to ``path``."""
        import mthree

        mit = mthree.M3Mitigation(backend)
        mit.cals_from_system(list(qubits), shots=shots, async_cal=False, runtime_mode=mode)
        mit.cals_to_file(str(path))
        return ReadoutCalibration(path)

    def correct(self, counts: Mapping[str, int], qubits: Sequence[int]) -> tuple[dict[str, float], float]:
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
