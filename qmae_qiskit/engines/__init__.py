"""Fidelity engines behind one protocol, :class:`Engine`: ``branches`` (everything a forward pass
gives per image: :class:`Branches`) and ``reconstruct`` (the decoder's pixel probabilities).

``exact``: batched torch linear algebra (the fast path, default for training).
``estimator``: ``EstimatorQNN`` + ``TorchConnector`` on Aer (the design card's Qiskit path).
:mod:`.noisy`: the exact engine with a Pauli channel after every block, one sampled trajectory per
image (its averages are Aer's density-matrix simulation of the same noisy circuit).

Both are proved equal in ``tests/engines/``; a type checker (mypy, in ``make test``) checks that
both satisfy the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from .branches import Branches
from .exact import ANSATZES

ENGINES = ("exact", "estimator")

__all__ = ["ANSATZES", "ENGINES", "Branches", "Engine", "make_engine"]


@runtime_checkable
class Engine(Protocol):
    """What the model asks of an engine."""

    name: str
    num_qubits: int

    def branches(
        self, theta: torch.Tensor, masked: torch.Tensor, original: torch.Tensor, *, decoder: torch.Tensor | None = None
    ) -> Branches:
        """Per image: the reset fidelity, the joint probability of keeping a shot and passing,
        and ``P(trash = 0)``, differentiable in ``theta``, ``decoder`` and ``masked``.

        Args:
            theta: encoder weights.
            masked: ``(B, 2**n)`` encoder inputs (token-filled images, or the embedded states).
            original: ``(B, 2**n)`` references.
            decoder: the untied decoder's weights, or ``None`` (``U^dagger``).
        """
        ...

    def reconstruct(
        self,
        theta: torch.Tensor,
        masked: torch.Tensor,
        *,
        postselect: bool = False,
        decoder: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(B, 2**n)`` pixel probabilities of the decoder's output (trash reset, or post-selected on 0)."""
        ...


def make_engine(
    name: str, num_qubits: int, pairs: Sequence[tuple[int, int]], trash_qubits: Sequence[int], **options: Any
) -> Engine:
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
