"""Hardware (ISA) circuits: transpile each variant once per backend, keep it parameterized.

Many images then become many parameter bindings of one ISA circuit (one PUB), not one
transpilation each. ISA circuits are cached on disk (QPY) by backend, variant, architecture and
optimization level, because the 17-qubit circuit takes a while to route.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qiskit import QuantumCircuit, qpy
from qiskit.transpiler import generate_preset_pass_manager

from ..checkpoint import atomic_write
from ..circuits.features import FEATURES
from ..circuits.fidelity import CIRCUIT_VARIANTS
from ..model import QMAE
from ..model_circuits import template
from .options import SubmitOptions

__all__ = [
    "TranspileReport",
    "isa_circuit",
    "transpile_report",
    "mid_circuit_measurements",
    "success_probability",
    "target_fingerprint",
    "HARDWARE_VARIANTS",
]

log = logging.getLogger(__name__)
AER_BASIS = ["cx", "rz", "sx", "x", "reset", "measure"]  # an IBM-style basis: what twirling accepts
# every template can run: the fidelity variants, the reconstruction and the latent features
HARDWARE_VARIANTS = (*CIRCUIT_VARIANTS, FEATURES)


@dataclass(frozen=True)
class TranspileReport:
    """What one variant costs on one backend.

    Attributes:
        variant: circuit variant.
        backend: backend name.
        qubits: qubits the circuit uses (logical).
        depth: depth of the ISA circuit.
        two_qubit_gates: two-qubit gates in the ISA circuit.
        success_probability: product of (1 - error) over the ISA circuit's gates and measurements,
            from the backend's reported errors (``None`` for a backend without error data).
        logical_two_qubit_gates: two-qubit gates before transpilation (after unrolling to CX).
    """

    variant: str
    backend: str
    qubits: int
    depth: int
    two_qubit_gates: int
    success_probability: float | None
    logical_two_qubit_gates: int


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qmae-qiskit" / "isa"


def two_qubit_gates(circuit: QuantumCircuit) -> int:
    """Two-qubit operations of a circuit (an ISA circuit: its CZ or ECR count)."""
    return sum(1 for inst in circuit.data if inst.operation.num_qubits == 2 and inst.operation.name != "barrier")


def mid_circuit_measurements(circuit: QuantumCircuit) -> bool:
    """True when a qubit is measured and then acted on, or reset after it was used (a reset is a
    measurement whose outcome is dropped): what makes a noisy simulator run one trajectory (or one
    density matrix) per shot instead of sampling every shot from one run."""
    touched: set[Any] = set()
    measured: set[Any] = set()
    for inst in circuit.data:
        name = inst.operation.name
        if name in ("barrier", "delay"):
            continue
        if measured.intersection(inst.qubits) or (name == "reset" and touched.intersection(inst.qubits)):
            return True
        if name == "measure":
            measured.update(inst.qubits)
        touched.update(inst.qubits)
    return False


def success_probability(circuit: QuantumCircuit, backend: Any) -> float | None:
    """Product of (1 - error) over the ISA circuit's operations, from ``backend.target``."""
    target = getattr(backend, "target", None)
    if target is None:
        return None
    log_p, seen = 0.0, False
    for inst in circuit.data:
        name = inst.operation.name
        if name in ("barrier", "delay") or name not in target.operation_names:
            continue
        qargs = tuple(circuit.find_bit(q).index for q in inst.qubits)
        props = target[name].get(qargs) if target[name] is not None else None
        error = getattr(props, "error", None)
        if error is not None:
            seen = True
            log_p += math.log1p(-min(error, 1 - 1e-12))
    return math.exp(log_p) if seen else None


def target_fingerprint(backend: Any) -> str:
    """A hash of the backend's target: every operation's qubits, error rate and duration.

    Level-3 transpilation picks its layout from the day's error rates, so an ISA circuit is only
    reused for the calibration it was made for; a fake device's target never changes, so its
    cache entries stay valid. Backends without a target (Aer) hash to ``"no-target"``.
    """
    target = getattr(backend, "target", None)
    if target is None:
        return "no-target"
    digest = hashlib.sha256()
    for name in sorted(target.operation_names):
        properties = target[name] or {}
        for qargs in sorted(properties, key=str):
            props = properties[qargs]
            digest.update(
                f"{name}|{qargs}|{getattr(props, 'error', None)}|{getattr(props, 'duration', None)};".encode()
            )
    return digest.hexdigest()[:16]


def isa_circuit(
    model: QMAE,
    backend: Any,
    variant: str,
    *,
    optimization_level: int = SubmitOptions.optimization_level,
    seed: int = 0,
    cache: bool = True,
) -> QuantumCircuit:
    """The measured, parameterized circuit of ``variant`` transpiled for ``backend``.

    Raises:
        ValueError: unknown variant, or a circuit wider than the backend.
    """
    if variant not in HARDWARE_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(HARDWARE_VARIANTS)}")
    logical = template(model, variant, measure=True).circuit
    size = getattr(backend, "num_qubits", None)
    if size is not None and logical.num_qubits > size:
        raise ValueError(
            f"the {variant!r} circuit needs {logical.num_qubits} qubits but {backend.name} has {size}; choose a "
            "smaller variant"
        )
    # the target's fingerprint: a recalibrated device (new error rates) gets a new layout, not the cached one
    key = hashlib.sha256(
        json.dumps(
            [backend.name, target_fingerprint(backend), variant, optimization_level, seed, model.architecture(), "v5"],
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()[:20]
    path = _cache_dir() / f"{key}.qpy"
    if cache and path.exists():
        try:
            with open(path, "rb") as fh:
                isa = qpy.load(fh)[0]
            log.info("the %r circuit for %s, transpiled before (cache %s)", variant, backend.name, path.name)
            return isa
        except Exception:  # a stale or partial cache entry: rebuild it
            path.unlink(missing_ok=True)
    if getattr(backend, "target", None) is None or backend.name.startswith("aer"):
        # Aer runs anything; a fixed basis keeps the circuit twirlable (no CSWAP or multiplexers left)
        pm = generate_preset_pass_manager(
            optimization_level=optimization_level, basis_gates=AER_BASIS, seed_transpiler=seed
        )
    else:
        pm = generate_preset_pass_manager(optimization_level=optimization_level, backend=backend, seed_transpiler=seed)
    log.info("transpiling the %r circuit for %s (optimization level %d)", variant, backend.name, optimization_level)
    isa = pm.run(logical)
    if cache:
        buffer = io.BytesIO()
        qpy.dump(isa, buffer)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda fh: fh.write(buffer.getvalue()))
    return isa


def transpile_report(
    model: QMAE,
    backend: Any,
    variants: tuple[str, ...] = ("paper", "reset", "destructive"),
    *,
    optimization_level: int = SubmitOptions.optimization_level,
) -> list[TranspileReport]:
    """A :class:`TranspileReport` per variant (transpiling, or reading the cache)."""
    from qiskit import transpile

    rows = []
    for variant in variants:
        isa = isa_circuit(model, backend, variant, optimization_level=optimization_level)
        logical = transpile(
            template(model, variant, measure=True).circuit,
            basis_gates=["cx", "rz", "ry", "sx", "x", "reset", "measure"],
            optimization_level=0,
        )
        rows.append(
            TranspileReport(
                variant,
                backend.name,
                template(model, variant, measure=True).circuit.num_qubits,
                isa.depth(),
                two_qubit_gates(isa),
                success_probability(isa, backend),
                two_qubit_gates(logical),
            )
        )
    return rows


def report_table(rows: list[TranspileReport]) -> str:
    """The report as a Markdown table."""
    lines = [
        "| backend | variant | qubits | depth | 2q gates (ISA) | 2q gates (logical) | est. success probability |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = "n/a" if r.success_probability is None else f"{r.success_probability:.2e}"
        lines.append(
            f"| {r.backend} | {r.variant} | {r.qubits} | {r.depth} | {r.two_qubit_gates} | {r.logical_two_qubit_gates}"
            f" | {p} |"
        )
    return "\n".join(lines)


def as_dicts(rows: list[TranspileReport]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
