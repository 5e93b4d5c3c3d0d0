"""Fidelity engines behind one interface: ``fidelity(theta, masked, original) -> (B,)``.

``exact``: batched torch linear algebra (the fast path, default for training).
``estimator``: ``EstimatorQNN`` + ``TorchConnector`` on Aer (the design card's Qiskit path).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .branches import Branches

ENGINES = ("exact", "estimator")

__all__ = ["ENGINES", "Branches", "make_engine"]


def make_engine(
    name: str, num_qubits: int, pairs: Sequence[tuple[int, int]], trash_qubits: Sequence[int], **options: Any
):
    """Build the engine called ``name``.

    Raises:
        ValueError: unknown engine name.
    """
    if name == "exact":
        from .exact import ExactEngine

        return ExactEngine(num_qubits, pairs, trash_qubits, **options)
    if name == "estimator":
        from .estimator import EstimatorEngine

        return EstimatorEngine(num_qubits, pairs, trash_qubits, **options)
    raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
