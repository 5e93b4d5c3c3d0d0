"""Error mitigation of sampled fidelities: readout (mthree) and zero-noise extrapolation.

* **Readout**: ``mthree`` calibrates the physical qubits the ISA circuit measures (on the same
  backend, in the same Batch on hardware) and corrects each image's counts into a
  quasi-distribution; the fidelity estimator then reads that instead of the raw counts. The
  calibration is saved next to the job record, so ``fetch`` re-scores without recalibrating.
* **ZNE**: the runtime's own ZNE (``resilience.zne``) belongs to the Estimator, and local testing
  mode ignores resilience options; our jobs use the Sampler. So noise is amplified the standard
  way, by *unitary folding* of every two-qubit gate ``G -> G (G^dagger G)^k`` (scale ``2k + 1``;
  Giurgica-Tiron et al., 2020, as in mitiq's ``fold_gates_at_random`` with all gates folded),
  applied to the ISA circuit after transpilation so the router cannot undo it, and the
  fidelities at scales ``1, 3, ...`` are extrapolated to 0 (exponential by default: a circuit
  whose errors are depolarizing-like decays geometrically in the number of gates).

Twirling and dynamical decoupling are options of the runtime Sampler (see :mod:`.jobs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qiskit import QuantumCircuit

__all__ = [
    "EXTRAPOLATIONS",
    "parse_scales",
    "fold_two_qubit_gates",
    "extrapolate",
    "measured_qubits",
    "ReadoutCalibration",
]

EXTRAPOLATIONS = ("exponential", "linear")


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
