"""The ancilla-assisted decoder: where it starts and how the exact engine applies it.

After the decoder ``V^dagger``, an *ancilla stage* ``W(omega)`` acts on the ``n`` data qubits and
``A`` fresh ancillas (the highest qubits, prepared in ``|0>``); only the shots where the ancillas
read 0 are kept. The data qubits then undergo ``<0_A| W |0_A>``, a block encoding of any
contraction, not only a projector: a decoder that can *fill* a patch rather than only undo the
encoder. Its pieces:

- this module: the stage's starting weights (:func:`initial_stage`, from :data:`IDENTITY_BLOCK`:
  training starts from the plain decoder) and its action on the decoder's output in the exact engine
  (:func:`apply_stage`);
- :mod:`qmae_qiskit.circuits.ancilla_decoder`: the same stage as a Qiskit circuit on ``aux`` qubits;
- :class:`~qmae_qiskit.engines.Branches` ``.accepted``: the fraction of shots it keeps;
- :class:`~qmae_qiskit.ModelConfig` ``.ancillas`` (``--ancillas``): how many ancillas.

The SWAP test's own extra qubit is not an ancilla here: it is the *control qubit* of the SWAP test.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["IDENTITY_BLOCK", "initial_stage", "apply_stage"]

# The block's angles that make it the identity (up to a global phase; found by optimization, pinned
# by tests/test_model.py): the ancilla stage starts here, so training starts from the plain decoder.
IDENTITY_BLOCK = (
    -2.4699099111311065,
    0.0,
    2.058715636117597,
    1.6783284927738604,
    1.1879388615120094,
    2.2476521907511295,
    math.pi / 2,
    -math.pi / 2,
    math.pi / 2,
    -2.8723759655116194,
    0.0,
    -1.4288187410094628,
    2.4647367916581073,
    -1.1879388675151195,
    -1.6783284933227827,
)


def initial_stage(
    *,
    sets: tuple[int, ...],
    num_blocks: int,
    wide_qubits: int,
    ansatz: str,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The ancilla stage's starting weights, (nearly) the identity: the plain decoder.

    Args:
        sets: ``()``, or ``(P,)`` for one weight set per patch position.
        num_blocks: two-qubit blocks of the stage (blocks ansatz).
        wide_qubits: ``n + A``.
        ansatz: ``"blocks"`` (:data:`IDENTITY_BLOCK` per block, plus 0.01 noise) or ``"unitary"``
            (a generator ``K`` near 0 on ``n + A`` qubits).
        generator: the random generator of the model's seed.

    Returns:
        ``([P,] 15 * num_blocks)`` or ``([P,] 2, 2**(n+A), 2**(n+A))``.
    """
    if ansatz == "unitary":
        wide = 2**wide_qubits
        return 0.01 * torch.randn(*sets, 2, wide, wide, generator=generator)
    identity = torch.tensor(IDENTITY_BLOCK).repeat(num_blocks)
    return identity + 0.01 * torch.randn(*sets, identity.numel(), generator=generator)


def apply_stage(stage: Any, out: torch.Tensor, weights: torch.Tensor, ancillas: int) -> torch.Tensor:
    """``<0_A| W (out_t (x) |0_A>)`` for the decoder's output ``out`` ``(B, T, 2**n)``.

    Args:
        stage: the stage's :class:`~qmae_qiskit.engines.exact.ExactEngine` on ``n + A`` qubits.
        out: the decoder's unnormalized output per trash branch.
        weights: the stage's weights.
        ancillas: ``A``.

    Returns:
        ``(B, T, 2**n)``: the accepted part (its squared norm is the kept fraction).
    """
    batch, branches, dim = out.shape
    flat = out.reshape(batch * branches, dim)
    if stage.ansatz == "unitary":
        block = stage.unitary(weights)[:dim, :dim]
        wide = flat @ block.transpose(0, 1)
    else:  # the super-gates on the few states, not W's 2^(n+A) x 2^(n+A) matrix; |0_A> pads with zeros
        padded = torch.cat([flat, flat.new_zeros(flat.shape[0], dim * (2**ancillas - 1))], dim=1)
        wide = stage.apply(weights, padded)[:, :dim]
    return wide.reshape(batch, branches, dim)
