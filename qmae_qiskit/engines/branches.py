"""What a forward pass of the QMAE circuit gives for each image, whatever the engine."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["Branches"]


class Branches(NamedTuple):
    """The fidelities of one batch, ``(B,)`` each, with ``phi = U psi`` split by trash value ``t``
    and ``eta = V chi`` (``V = U`` when the decoder is tied):

    Attributes:
        fidelity: the paper's fidelity with the trash *reset*, ``sum_t |<eta_0|phi_t>|^2``.
        joint: the probability that the trash is measured 0 *and* the SWAP test passes,
            ``|<eta_0|phi_0>|^2``.
        kept: ``P(trash = 0) = ||phi_0||^2``: the shots a post-selected circuit keeps (and the
            compression fidelity of Romero et al.'s quantum autoencoder).
        accepted: with an ancilla-assisted decoder (``ancillas > 0``), the fraction of shots the
            *reset* procedure keeps, ``P(ancillas = 0)``; ``None`` without ancillas (every shot is
            kept). With ancillas, ``fidelity`` is that of the accepted shots, ``joint`` is
            ``P(trash = 0, ancillas = 0, pass)`` and ``kept`` is ``P(trash = 0, ancillas = 0)``.
    """

    fidelity: torch.Tensor
    joint: torch.Tensor
    kept: torch.Tensor
    accepted: torch.Tensor | None = None

    @property
    def postselected(self) -> torch.Tensor:
        """The fidelity of the kept shots, ``joint / kept`` (0 where nothing is kept)."""
        return self.joint / torch.where(self.kept > 0, self.kept, torch.ones_like(self.kept))
