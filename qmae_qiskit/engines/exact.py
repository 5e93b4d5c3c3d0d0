"""The exact engine: the QMAE fidelity of a whole batch as dense torch linear algebra.

The circuit's answer has a closed form. With ``|psi>`` the (normalized) masked image,
``|chi>`` the original, ``phi = U psi`` and ``eta = U chi`` split as (trash value ``t``, latent
value ``a``), resetting the trash and decoding gives

    rho_out = U^dagger (Tr_trash |phi><phi|  (x)  |0><0|_trash) U,
    F = <chi| rho_out |chi> = sum_t | sum_a conj(eta[0, a]) phi[t, a] |^2,

so one training step needs ``U`` applied to the two batches and no density matrix.

Speed (see ``docs/benchmarks.md``): applying the 28 blocks one by one to a 256x256 matrix is
dominated by the memory copies of 28 axis permutations, forward and backward. So the blocks are
first fused into a few *super-gates* of ``w`` qubits (:func:`fuse_pairs`; 4 of width 5 at n = 8),
each a ``2^w x 2^w`` matrix built from the 4x4 blocks by a short chain of tiny batched products,
and only those touch the big matrix, each with one permutation copy. Each of these pieces has a hand-written
backward (``torch.autograd.Function``), gradchecked in ``tests/engines/test_exact.py``; the tests
pin the results to Qiskit's ``Operator``, ``Statevector`` and Aer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..circuits.ansatz import BLOCK_PARAMETERS
from .ancilla_decoder import apply_stage
from .branches import Branches

ANSATZES = ("blocks", "unitary")  # the paper's blocks, or a general unitary (the ceiling)

__all__ = ["ANSATZES", "ExactEngine", "block_matrices", "fuse_pairs", "trash_latent_order", "unitary_from_generator"]

# CNOTs in the block's 2-qubit basis index b0 + 2 b1 (Qiskit order: q0 is the low bit).
_CX10 = torch.tensor([0, 1, 3, 2])  # control q1, target q0: |10> <-> |11>  (indices 2 <-> 3)
_CX01 = torch.tensor([0, 3, 2, 1])  # control q0, target q1: |01> <-> |11>  (indices 1 <-> 3)

# The block's eight one-qubit gates as ZYZ triples (first, second, third angle in time order), as
# column indices into theta padded with a zero column (index 15): layer 1 (q0, q1), layer 2 (RZ q0,
# RY q1), layer 3 (nothing on q0, RY q1), layer 4 (q0, q1). See circuits/ansatz.py.
_Z = BLOCK_PARAMETERS
_ZYZ_INDEX = torch.tensor(
    [[0, 1, 2], [3, 4, 5], [6, _Z, _Z], [_Z, 7, _Z], [_Z, _Z, _Z], [_Z, 8, _Z], [9, 10, 11], [12, 13, 14]]
)


def _zyz(angles: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    """``RZ(c) RY(b) RZ(a)`` for ``angles[..., (a, b, c)]``, in closed form: shape ``(..., 2, 2)``."""
    a, b, c = angles.unbind(-1)
    cos, sin = torch.cos(b / 2).to(cdtype), torch.sin(b / 2).to(cdtype)
    plus = torch.polar(torch.ones_like(a), (a + c) / 2).to(cdtype)  # e^{i (a+c)/2}
    minus = torch.polar(torch.ones_like(a), (a - c) / 2).to(cdtype)  # e^{i (a-c)/2}
    top = torch.stack([plus.conj() * cos, -minus * sin], -1)
    bottom = torch.stack([minus.conj() * sin, plus * cos], -1)
    return torch.stack([top, bottom], -2)


# Rows of the four layers after their CNOT: B = L4 (CX10 L3) (CX01 L2) (CX10 L1), (CX @ M) = M[perm].
_ROW_PERMS = torch.stack([_CX10, _CX01, _CX10, torch.arange(4)])
# d g / d a = (i/2) S_A * g and d g / d c = (i/2) S_C * g for g = RZ(c) RY(b) RZ(a) (see _zyz)
_S_A = torch.tensor([[-1.0, 1.0], [-1.0, 1.0]])
_S_C = torch.tensor([[-1.0, -1.0], [1.0, 1.0]])


class _Blocks(torch.autograd.Function):
    """theta ``(P, 15)`` -> the blocks ``(P, 4, 4)``, with the backward written out.

    Autograd's backward of this graph of ~30 tiny ops costs several times its forward; the closed
    form is short: adjoints through the four layers (three batched products), the Kronecker factors'
    gradients (two einsums), and each angle's from d g / d angle, which for a ZYZ gate is the gate
    itself times a sign pattern (a, c) or the gate at b + pi (b). ``test_exact`` gradchecks it.
    """

    @staticmethod
    def forward(ctx, theta: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
        index = _ZYZ_INDEX.to(theta.device)
        angles = torch.cat([theta, theta.new_zeros(theta.shape[0], 1)], dim=1)[:, index]  # (P, 8, 3)
        ones = _zyz(angles, cdtype).reshape(-1, 4, 2, 2, 2)  # (P, layer, qubit, 2, 2)
        # kron(gate on q1, gate on q0) in index b0 + 2 b1, for the four layers at once
        layers = torch.einsum("plab,plcd->placbd", ones[:, :, 1], ones[:, :, 0]).reshape(-1, 4, 4, 4)
        rows = _ROW_PERMS.to(theta.device)
        m = layers[:, torch.arange(4, device=theta.device)[:, None], rows]  # each layer with its CNOT
        prefix = [m[:, 0]]
        for k in range(1, 4):
            prefix.append(m[:, k] @ prefix[-1])
        ctx.save_for_backward(angles, ones, m, torch.stack(prefix[:3], 1))
        return prefix[-1]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        angles, ones, m, prefix = ctx.saved_tensors
        adjoint = [grad]  # with respect to the prefix products, last first
        for k in range(3, 0, -1):
            adjoint.append(m[:, k].mH @ adjoint[-1])
        stacked = torch.stack(adjoint[::-1], 1)  # (P, 4, 4, 4)
        dm = torch.cat([stacked[:, :1], stacked[:, 1:] @ prefix.mH], 1)
        dlayers = torch.empty_like(dm)
        rows = _ROW_PERMS.to(grad.device)  # each CNOT's permutation is its own inverse
        dlayers[:, torch.arange(4, device=grad.device)[:, None], rows] = dm
        dl = dlayers.reshape(-1, 4, 2, 2, 2, 2)  # (P, layer, a, c, b, d)
        dq1 = torch.einsum("placbd,plcd->plab", dl, ones[:, :, 0].conj())
        dq0 = torch.einsum("placbd,plab->plcd", dl, ones[:, :, 1].conj())
        dg = torch.stack([dq0, dq1], 2).reshape(angles.shape[0], 8, 2, 2)
        g = ones.reshape(dg.shape)
        w = dg.conj() * g
        da = -0.5 * (w * _S_A.to(w.real.dtype).to(grad.device)).sum((-2, -1)).imag
        dc = -0.5 * (w * _S_C.to(w.real.dtype).to(grad.device)).sum((-2, -1)).imag
        shifted = _zyz(angles + angles.new_tensor([0.0, torch.pi, 0.0]), g.dtype)  # d g / d b = g(b + pi) / 2
        db = 0.5 * (dg.conj() * shifted).sum((-2, -1)).real
        dangles = torch.stack([da, db, dc], -1)  # (P, 8, 3)
        dtheta = angles.new_zeros(angles.shape[0], BLOCK_PARAMETERS + 1)
        dtheta.index_add_(1, _ZYZ_INDEX.to(grad.device).reshape(-1), dangles.reshape(angles.shape[0], -1))
        return dtheta[:, :BLOCK_PARAMETERS], None


def block_matrices(theta: torch.Tensor, cdtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """The 4x4 unitaries of :func:`qmae_qiskit.circuits.two_qubit_block` for each row of theta.

    Args:
        theta: ``(P, 15)`` real tensor, one row per block.
        cdtype: complex dtype of the result.

    Returns:
        ``(P, 4, 4)`` matrices, index ``b0 + 2 b1`` (``b0`` the block's first qubit); differentiable
        in ``theta``.
    """
    return _Blocks.apply(theta, cdtype)


def _inverse(perm: Sequence[int]) -> list[int]:
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return out


class _LayerChain(torch.autograd.Function):
    """``layers[D-1] @ ... @ layers[0]`` per group (``layers``: ``(D, G, S, S)``).

    ``layers`` is ``base`` (identity padding, zeros) with the block entries ``entries[source]``
    written at the flat positions ``where``: only ~6 % of the stack is a block entry, so this
    scatter (and its gather in the backward) is far cheaper than indexing every position. The
    backward is written out: one pass of adjoints, one batched product for all layer gradients.
    """

    @staticmethod
    def forward(
        ctx, entries: torch.Tensor, base: torch.Tensor, where: torch.Tensor, source: torch.Tensor
    ) -> torch.Tensor:
        layers = base.clone()
        layers.view(-1)[where] = entries[source]
        prefix = torch.empty_like(layers)
        prefix[0] = layers[0]
        for k in range(1, len(layers)):
            torch.matmul(layers[k], prefix[k - 1], out=prefix[k])
        ctx.save_for_backward(layers, prefix, where, source)
        ctx.num_entries = entries.shape[0]
        return prefix[-1].clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        layers, prefix, where, source = ctx.saved_tensors
        adjoint = torch.empty_like(layers)  # adjoint[k]: gradient with respect to prefix[k]
        adjoint[-1] = grad
        for k in range(len(layers) - 1, 0, -1):
            torch.matmul(layers[k].mH, adjoint[k], out=adjoint[k - 1])
        dlayers = torch.empty_like(layers)
        dlayers[0] = adjoint[0]
        torch.matmul(adjoint[1:], prefix[:-1].mH, out=dlayers[1:])
        dentries = grad.new_zeros(ctx.num_entries).index_add_(0, source, dlayers.view(-1)[where])
        return dentries, None, None, None


class _ApplyGates(torch.autograd.Function):
    """``G_k ... G_1 @ matrix`` with each ``2^w x 2^w`` gate on its qubits (see ``apply_left``).

    The same products as autograd would run, written out: the backward reuses the permuted inputs
    saved by the forward and skips autograd's bookkeeping for every view and permutation.
    """

    @staticmethod
    def forward(
        ctx, gates: torch.Tensor, matrix: torch.Tensor, perms: list[list[int]], final: list[int]
    ) -> torch.Tensor:
        size, shape = gates.shape[-1], (2,) * (len(final) - 1) + (matrix.shape[1],)
        x = matrix.reshape(shape)
        saved = []
        for gate, perm in zip(gates, perms):
            xp = x.permute(perm).reshape(size, -1)  # the gate's qubits first: one copy
            saved.append(xp)
            x = (gate @ xp).reshape(shape)
        ctx.save_for_backward(gates, *saved)
        ctx.perms, ctx.final, ctx.shape = perms, final, shape
        return x.permute(final).reshape(matrix.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gates, *saved = ctx.saved_tensors
        perms, shape, size = ctx.perms, ctx.shape, gates.shape[-1]
        d = grad.reshape(shape).permute(_inverse(ctx.final)).reshape(size, -1)
        dgates = torch.empty_like(gates)
        dmatrix = None
        for k in range(len(perms) - 1, -1, -1):
            torch.matmul(d, saved[k].mH, out=dgates[k])
            if k == 0 and not ctx.needs_input_grad[1]:
                break
            back = (gates[k].mH @ d).reshape(shape).permute(_inverse(perms[k]))
            if k == 0:
                dmatrix = back.reshape(grad.shape)
            else:
                d = back.reshape(size, -1)
        return dgates, dmatrix, None, None


class _BuildUnitary(torch.autograd.Function):
    """``G_k ... G_1`` as a ``(2^n, 2^n)`` matrix (``_ApplyGates`` on the identity, minus its
    first product: ``G_1 @ I`` is ``kron(G_1, I)`` with the columns in the first gate's qubit
    order, which the final permutation puts back together with the rows')."""

    @staticmethod
    def forward(ctx, gates: torch.Tensor, perms: list[list[int]], final: list[int]) -> torch.Tensor:
        size, n = gates.shape[-1], len(perms[0]) - 1
        dim, rest = 2**n, 2**n // gates.shape[-1]
        shape = (2,) * n + (dim,)
        eye = torch.eye(rest, dtype=gates.dtype, device=gates.device)
        x = (gates[0][:, None, :, None] * eye[None, :, None, :]).reshape(shape)  # rows and columns in perms[0]'s order
        saved = []
        for gate, perm in zip(gates[1:], perms[1:]):
            xp = x.permute(perm).reshape(size, -1)
            saved.append(xp)
            x = (gate @ xp).reshape(shape)
        ctx.save_for_backward(gates, *saved)
        ctx.perms, ctx.final = perms, final
        return x.reshape((2,) * (2 * n)).permute(final).reshape(dim, dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gates, *saved = ctx.saved_tensors
        perms, size = ctx.perms, gates.shape[-1]
        n = len(perms[0]) - 1
        dim, rest = 2**n, 2**n // size
        shape = (2,) * n + (dim,)
        d = grad.reshape((2,) * (2 * n)).permute(_inverse(ctx.final)).reshape(size, -1)
        dgates = torch.empty_like(gates)
        for k in range(len(perms) - 1, 0, -1):
            torch.matmul(d, saved[k - 1].mH, out=dgates[k])
            d = (gates[k].mH @ d).reshape(shape).permute(_inverse(perms[k])).reshape(size, -1)
        # d kron(G_1, I) / d G_1: the sum over the identity's diagonal
        dgates[0] = d.view(size, rest, size, rest).diagonal(dim1=1, dim2=3).sum(-1)
        return dgates, None, None


class _Overlaps(torch.autograd.Function):
    """The three numbers of :class:`~qmae_qiskit.engines.Branches` from complex ``phi``
    ``(B, T, A)`` and ``eta`` ``(B, A)``: ``F = sum_t |<eta|phi_t>|^2``, ``joint = |<eta|phi_0>|^2``
    and ``kept = ||phi_0||^2``, with the closed-form backward (``d|o_t|^2/dphi_t = 2 o_t eta``,
    ``d|o_t|^2/deta = 2 conj(o_t) phi_t`` for ``o_t = <eta|phi_t>``): a few ops instead of
    autograd's ~25 elementwise ones."""

    @staticmethod
    def forward(ctx, phi: torch.Tensor, eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        overlap = (phi @ eta.conj().unsqueeze(-1)).squeeze(-1)  # (B, T)
        ctx.save_for_backward(phi, eta, overlap)
        squares = overlap.abs().square()
        return squares.sum(1), squares[:, 0], phi[:, 0].abs().square().sum(1)

    @staticmethod
    def backward(ctx, dfid: torch.Tensor, djoint: torch.Tensor, dkept: torch.Tensor):
        phi, eta, overlap = ctx.saved_tensors
        weights = dfid[:, None].expand(overlap.shape).clone()  # dL/d|o_t|^2, (B, T)
        weights[:, 0] += djoint
        weighted = 2 * weights * overlap
        dphi = weighted.unsqueeze(-1) * eta.unsqueeze(1)
        dphi[:, 0] += 2 * dkept[:, None] * phi[:, 0]
        deta = (weighted.conj().unsqueeze(1) @ phi).squeeze(1)
        return dphi, deta


def _gate_plan(num_qubits: int, groups: Sequence[Sequence[int]]) -> tuple[list[list[int]], list[int], list[int]]:
    """Axis permutations that put each gate's qubits first, in turn.

    The state is a (2, ..., 2, R) tensor with a lazily tracked qubit order: axes[p] is the qubit of
    dimension p. Each permutation moves the next gate's qubits to the front (one copy, of contiguous
    R-element runs, so it is cheap) for a single (2^w x 2^w) @ (2^w x rest) product.

    Returns:
        ``(perms, final, final_with_columns)``: ``final`` restores Qiskit's row order of a
        ``(2,)*n + (R,)`` tensor; ``final_with_columns`` that of a ``(2,)*2n`` tensor whose columns
        are in the first gate's order too (see ``_BuildUnitary``).
    """
    n = num_qubits
    axes = list(range(n - 1, -1, -1))  # reshape puts the most significant bit (qubit n-1) first
    perms = []
    for qubits in groups:
        target = list(qubits)[::-1] + [q for q in axes if q not in qubits]  # the gate's local bit 0 is qubits[0]
        perms.append([axes.index(q) for q in target] + [n])
        axes = target
    first = perms[0][:-1]  # column axes after kron(G_1, I): qubit first_qubits[p] at position p
    first_qubits = [list(range(n - 1, -1, -1))[p] for p in first]
    rows = [axes.index(q) for q in range(n - 1, -1, -1)]
    columns = [n + first_qubits.index(q) for q in range(n - 1, -1, -1)]
    return perms, rows + [n], rows + columns


def trash_latent_order(num_qubits: int, trash_qubits: Sequence[int]) -> list[int]:
    """Qiskit basis indices listed in (trash value, latent value) order, trash value major."""
    latent = [q for q in range(num_qubits) if q not in trash_qubits]
    order = []
    for t in range(2 ** len(trash_qubits)):
        for a in range(2 ** len(latent)):
            idx = sum(((t >> k) & 1) << q for k, q in enumerate(trash_qubits))
            order.append(idx + sum(((a >> k) & 1) << q for k, q in enumerate(latent)))
    return order


def fuse_pairs(num_qubits: int, pairs: Sequence[tuple[int, int]], width: int) -> list[tuple[list[int], list[int]]]:
    """Group the blocks into super-gates of at most ``width`` qubits, as few as greedily found.

    Blocks on disjoint qubits commute, so a block may join the current super-gate as soon as every
    earlier block that shares a qubit with it is placed: the circuit's dependency order, not its
    listing order, bounds the grouping. Among the blocks that are ready and fit, the one adding the
    fewest new qubits is taken first. For all 28 pairs of n = 8 at width 5 this gives 4 super-gates
    where cutting the listing into runs gives 6; each fewer super-gate saves three 2^n x 2^n
    products per training step.

    Returns:
        ``(qubits, block_indices)`` per super-gate, in time order (within a super-gate too);
        ``qubits`` always has ``width`` entries (padded with idle qubits) so that all super-gates
        have one shape.
    """
    earlier = [{j for j in range(k) if set(pairs[j]) & set(pairs[k])} for k in range(len(pairs))]
    placed: set[int] = set()
    groups: list[tuple[list[int], list[int]]] = []
    while len(placed) < len(pairs):
        qubits: list[int] = []
        blocks: list[int] = []
        while True:
            done = placed.union(blocks)
            fits = [
                (len(set(pairs[k]) - set(qubits)), k)
                for k in range(len(pairs))
                if k not in done and earlier[k] <= done and len(set(qubits).union(pairs[k])) <= width
            ]
            if not fits:
                break
            k = min(fits)[1]
            qubits += [q for q in dict.fromkeys(pairs[k]) if q not in qubits]
            blocks.append(k)
        placed.update(blocks)
        groups.append((qubits, blocks))
    for qs, _ in groups:
        qs.extend(q for q in range(num_qubits) if q not in qs and len(qs) < width)
    return groups


def _cheapest_width(num_qubits: int, pairs: Sequence[tuple[int, int]]) -> int:
    """The fusion width with the least work per training step, by a cost model. Building U costs,
    per super-gate after the first, three ``2^w x 2^w`` by ``2^w x 4^n / 2^w`` products (forward,
    and two backward), each also a pass over the whole ``4^n`` matrix (the permuting copy, worth
    ~16 multiply-adds per entry here); building the super-gates three ``2^w``-cubed products per
    layer and super-gate. At n = 8 this picks 5, which measured fastest (4 and 6: 18 % and 40 % slower)."""

    def cost(width: int) -> int:
        groups = fuse_pairs(num_qubits, pairs, width)
        depth = max(len(blocks) for _, blocks in groups)
        return 3 * (len(groups) - 1) * (2**width + 16) * 4**num_qubits + 3 * depth * len(groups) * 8**width

    return min(range(2, min(num_qubits, 7) + 1), key=cost)


def unitary_from_generator(generator: torch.Tensor, cdtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """``exp(K)`` for the anti-Hermitian ``K = A - A^dagger``, ``A = generator[0] + i generator[1]``.

    The ``"unitary"`` ansatz: every ``2^n x 2^n`` unitary is reachable, so training it bounds what
    any circuit of the same architecture could do (an optimization result, not a proof).

    Args:
        generator: ``(2, 2**n, 2**n)`` real.

    Returns:
        ``(2**n, 2**n)`` unitary, differentiable in ``generator``.
    """
    x, y = generator.to(cdtype.to_real()).unbind(0)
    k = torch.complex(x - x.transpose(0, 1), y + y.transpose(0, 1))
    return _ExpAntiHermitian.apply(k.to(cdtype))


class _ExpAntiHermitian(torch.autograd.Function):
    """``exp(K)`` for an anti-Hermitian ``K``, from one eigendecomposition of the Hermitian ``H = iK``.

    ``exp(K) = V diag(e^{-i lambda}) V^dagger``. The backward is the Frechet derivative of ``exp`` at
    ``K^dagger = iH`` (PyTorch's convention for complex gradients), in the same eigenbasis
    (Daleckii-Krein): ``V (Phi o (V^dagger G V)) V^dagger`` with the divided differences
    ``Phi_jk = (e^{i lambda_j} - e^{i lambda_k}) / (i (lambda_j - lambda_k))
    = e^{i (lambda_j + lambda_k) / 2} sinc((lambda_j - lambda_k) / 2)``, finite at degenerate
    eigenvalues. Equal to ``torch.linalg.matrix_exp`` and its gradient (to 1e-12 in double
    precision, ``tests/engines/test_exact.py``) and ~10x faster at 512 x 512: ``eigh`` instead of
    Pade with squaring, and no ``2d x 2d`` exponential in the backward.
    """

    @staticmethod
    def forward(ctx, k: torch.Tensor) -> torch.Tensor:
        lam, v = torch.linalg.eigh(1j * k)  # (d,) real, (d, d) unitary
        ctx.save_for_backward(lam, v)
        return (v * torch.exp(-1j * lam).to(v.dtype)) @ v.mH

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        lam, v = ctx.saved_tensors
        half_sum, diff = lam[:, None] + lam[None, :], lam[:, None] - lam[None, :]
        phi = torch.exp(0.5j * half_sum) * torch.sinc(diff / (2 * torch.pi))  # torch.sinc(x) = sin(pi x)/(pi x)
        return v @ (phi.to(v.dtype) * (v.mH @ grad @ v)) @ v.mH


class ExactEngine:
    """Batched, differentiable, exact QMAE fidelity and reconstruction.

    Args:
        num_qubits: data qubits ``n``.
        pairs: the encoder's qubit pairs, in circuit order (unused by the ``"unitary"`` ansatz).
        trash_qubits: data qubits reset (or measured) between encoder and decoder.
        ansatz: ``"blocks"`` (the paper's 15-parameter blocks, weights ``(15 * len(pairs),)``) or
            ``"unitary"`` (a general unitary ``exp(K)``, weights ``(2, 2**n, 2**n)``: the ceiling).
        dtype: complex dtype of the simulation (``torch.complex64`` or ``torch.complex128``).
        fuse_width: qubits per fused super-gate (2 applies the blocks one by one; default: the
            cheapest by the cost model of ``_cheapest_width``, 5 for the 28 pairs of n = 8).
        ancillas: ``A`` fresh qubits the decoder acts on after ``V^dagger`` (the ancilla stage
            ``W`` on ``n + A`` qubits, ancillas the highest); only shots where they read 0 are
            kept, so the decoder applies the block ``<0|W|0>``, any contraction rather than a
            projector (a block encoding).
        ancilla_pairs: the ancilla stage's qubit pairs on ``n + A`` qubits (blocks ansatz).
    """

    name = "exact"

    def __init__(
        self,
        num_qubits: int,
        pairs: Sequence[tuple[int, int]],
        trash_qubits: Sequence[int],
        *,
        ansatz: str = "blocks",
        dtype: torch.dtype = torch.complex64,
        fuse_width: int | None = None,
        ancillas: int = 0,
        ancilla_pairs: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        if dtype not in (torch.complex64, torch.complex128):
            raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
        if ansatz not in ANSATZES:
            raise ValueError(f"unknown ansatz {ansatz!r}; choose one of {', '.join(ANSATZES)}")
        self.num_qubits = num_qubits
        self.pairs = [(int(p[0]), int(p[1])) for p in pairs]
        self.trash_qubits = tuple(trash_qubits)
        self.ansatz = ansatz
        self.dtype = dtype
        self.ancillas = int(ancillas)
        self.ancilla_stage: ExactEngine | None = None
        if self.ancillas:
            wide = num_qubits + self.ancillas
            stage_pairs = (
                [(i, j) for i in range(wide) for j in range(i + 1, wide)] if ancilla_pairs is None else ancilla_pairs
            )
            self.ancilla_stage = ExactEngine(wide, stage_pairs, (), ansatz=ansatz, dtype=dtype)
        # basis index of (trash value t, latent value a): lets F be a reshape, not a gather per step
        self._order = torch.as_tensor(trash_latent_order(num_qubits, self.trash_qubits))
        # with the default trash (the highest qubits) the order is the identity: skip the gather
        self._identity_order = bool(torch.equal(self._order, torch.arange(2**num_qubits)))
        if ansatz == "unitary":
            self.width = None
            return
        width = _cheapest_width(num_qubits, pairs) if fuse_width is None else fuse_width
        if not 2 <= width <= num_qubits:
            raise ValueError(f"fuse_width must be in 2..{num_qubits}, got {fuse_width}")
        self.width = width
        self._plan(width)

    def _plan(self, width: int) -> None:
        """Precompute, per super-gate, where each block's 4x4 entries go in its 2^w x 2^w matrix."""
        self.groups = fuse_pairs(self.num_qubits, self.pairs, width)
        size = 2**width
        local = torch.arange(size)
        depth = max(len(blocks) for _, blocks in self.groups)
        # index[l, g] maps each (row, col) of layer l of group g into the flattened, padded block
        # table: 16 * block + entry, or the "one" / "zero" slots at the end (identity padding).
        one, zero = 16 * len(self.pairs), 16 * len(self.pairs) + 1
        index = torch.full((depth, len(self.groups), size, size), zero, dtype=torch.long)
        for g, (qubits, blocks) in enumerate(self.groups):
            for layer in range(depth):
                if layer >= len(blocks):
                    index[layer, g].fill_diagonal_(one)
                    continue
                k = blocks[layer]
                i, j = self.pairs[k]
                pi, pj = qubits.index(i), qubits.index(j)
                rest = ~((1 << pi) | (1 << pj))
                r, c = local[:, None], local[None, :]
                same = (r & rest) == (c & rest)
                entry = (((r >> pi) & 1) + 2 * ((r >> pj) & 1)) * 4 + ((c >> pi) & 1) + 2 * ((c >> pj) & 1)
                index[layer, g] = torch.where(same, 16 * k + entry, torch.full_like(entry, zero))
        # the stack as a constant (identity padding, zeros) and the scatter of the block entries
        where = (index < one).reshape(-1).nonzero().squeeze(1)
        self._chain = {"base": (index == one).to(self.dtype), "where": where, "source": index.reshape(-1)[where]}
        self._devices: dict[torch.device, dict[str, torch.Tensor]] = {}
        qubit_groups = [qubits for qubits, _ in self.groups]
        self._perms, self._final, self._final_unitary = _gate_plan(self.num_qubits, qubit_groups)
        # U^T = G_1^T ... G_k^T: the same machinery with the gates reversed and transposed
        self._perms_t, _, self._final_unitary_t = _gate_plan(self.num_qubits, qubit_groups[::-1])

    def blocks(self, theta: torch.Tensor) -> torch.Tensor:
        """The encoder's blocks in circuit order, ``(len(pairs), 4, 4)`` (:func:`block_matrices`)."""
        return block_matrices(theta.to(self.dtype.to_real()).reshape(-1, BLOCK_PARAMETERS), self.dtype)

    def super_gates(self, theta: torch.Tensor) -> torch.Tensor:
        """The fused gates, ``(groups, 2**w, 2**w)``, local index bit m = qubit ``groups[g][0][m]``."""
        return self.super_gates_of(self.blocks(theta))

    def super_gates_of(self, blocks: torch.Tensor) -> torch.Tensor:
        """The fused gates of any ``(len(pairs), 4, 4)`` block matrices on this engine's pairs (the
        noisy engine's blocks with their sampled Pauli errors), differentiable in ``blocks``."""
        chain = self._devices.get(blocks.device)
        if chain is None:
            chain = self._devices[blocks.device] = {k: v.to(blocks.device) for k, v in self._chain.items()}
        return _LayerChain.apply(
            blocks.reshape(-1), chain["base"], chain["where"], chain["source"]
        )  # (groups, 2^w, 2^w)

    def apply_gates(self, gates: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """The circuit of the fused ``gates`` (:meth:`super_gates_of`) applied to each row of
        ``states`` (``(M, 2**n)`` complex)."""
        return _ApplyGates.apply(gates, states.transpose(0, 1), self._perms, self._final).transpose(0, 1)

    def apply_left(self, theta: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        """``U @ matrix`` for a ``(2**n, R)`` complex matrix (columns are states)."""
        return _ApplyGates.apply(self.super_gates(theta), matrix, self._perms, self._final)

    def apply(self, theta: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``U`` applied to each row of ``states`` (``(M, 2**n)`` complex): ``states @ U^T``."""
        return self.apply_left(theta, states.transpose(0, 1)).transpose(0, 1)

    def unitary(self, theta: torch.Tensor) -> torch.Tensor:
        """The encoder's ``(2**n, 2**n)`` unitary ``U`` (Qiskit's index order)."""
        if self.ansatz == "unitary":
            return unitary_from_generator(theta, self.dtype)
        return _BuildUnitary.apply(self.super_gates(theta), self._perms, self._final_unitary)

    def unitary_transpose(self, theta: torch.Tensor) -> torch.Tensor:
        """``U^T``, built directly: its rows are U's columns, so ``view_as_real(U^T)`` is the real
        ``(2^n, 2 * 2^n)`` matrix that maps a real state to ``U psi``'s (re, im) pairs, no copy."""
        if self.ansatz == "unitary":
            return unitary_from_generator(theta, self.dtype).transpose(0, 1).contiguous()
        return _BuildUnitary.apply(
            self.super_gates(theta).flip(0).transpose(1, 2), self._perms_t, self._final_unitary_t
        )

    def _reorder_rows(self, matrix: torch.Tensor) -> torch.Tensor:
        return matrix if self._identity_order else matrix[self._order]

    def _normalize(self, vectors: torch.Tensor, device: torch.device) -> torch.Tensor:
        v = vectors.to(device=device, dtype=self.dtype.to_real())
        norm = v.norm(dim=1, keepdim=True)
        # an all-zero masked image has no state: it contributes F = 0 (see QMAE.fidelity)
        return v / torch.where(norm > 0, norm, torch.ones_like(norm))

    def _states(self, theta: torch.Tensor, decoder: torch.Tensor | None, psi: torch.Tensor, chi: torch.Tensor):
        """``phi = U psi`` as ``(B, T, latent)`` and ``eta_0`` (the trash = 0 part of ``V chi``,
        ``V = U`` when tied) as ``(B, latent)``, complex."""
        batch, dim = psi.shape
        latent = 2 ** (self.num_qubits - len(self.trash_qubits))
        if self.ansatz == "blocks" and (2 if decoder is None else 1) * batch <= dim:
            # few images: apply the super-gates to them directly, no U
            if decoder is None:
                out = self.apply(theta, torch.cat([psi, chi]).to(self.dtype))
                phi, eta = out[:batch], out[batch:]
            else:
                phi, eta = self.apply(theta, psi.to(self.dtype)), self.apply(decoder, chi.to(self.dtype))
            if not self._identity_order:
                phi, eta = phi[:, self._order], eta[:, self._order]
            return phi.reshape(batch, -1, latent), eta[:, :latent]

        # Build U once and use that the images are *real*: U psi is one real product with
        # view_as_real(U^T), half the work of a complex one, whose result is already U psi's
        # (re, im) pairs, so it is viewed as complex without a copy.
        def real_view(weights: torch.Tensor) -> torch.Tensor:
            ut = self.unitary_transpose(weights)
            if not self._identity_order:
                ut = ut[:, self._order]  # U's rows ordered (trash value, latent value)
            return torch.view_as_real(ut).reshape(dim, 2 * dim)  # w[j, (i, re/im)] = U[i, j]

        w = real_view(theta)
        wd = w if decoder is None else real_view(decoder)
        phi = torch.view_as_complex((psi @ w).view(batch, -1, latent, 2))  # (B, T, latent), no copy
        eta0 = torch.view_as_complex((chi @ wd[:, : 2 * latent]).view(batch, latent, 2))
        return phi, eta0

    def branches(
        self,
        theta: torch.Tensor,
        masked: torch.Tensor,
        original: torch.Tensor,
        *,
        decoder: torch.Tensor | None = None,
        ancilla: torch.Tensor | None = None,
    ) -> Branches:
        """Everything one forward pass gives, per image of the batch.

        Args:
            theta: encoder weights (``(15 * len(pairs),)``, or ``(2, 2**n, 2**n)`` for the unitary ansatz).
            masked: ``(B, 2**n)`` real encoder inputs (the masked, token-filled images).
            original: ``(B, 2**n)`` real references (the unmasked images).
            decoder: the decoder's own weights (untied), or ``None`` for ``U^dagger`` (tied).
            ancilla: the ancilla stage's weights (engines built with ``ancillas > 0`` only).

        Returns:
            :class:`~qmae_qiskit.engines.Branches` of ``(B,)`` tensors: the reset fidelity, the
            joint probability of keeping the shot and passing, and ``P(trash = 0)`` (with
            ancillas: of the accepted shots, and ``accepted``).
        """
        if self.ancillas:
            if ancilla is None:
                raise ValueError(f"this engine's decoder has {self.ancillas} ancilla(s): pass their weights (ancilla=)")
            return self.branches_from(self.decoded(theta, masked, decoder=decoder, ancilla=ancilla), original)
        psi = self._normalize(masked, theta.device)
        chi = self._normalize(original, theta.device)
        phi, eta0 = self._states(theta, decoder, psi, chi)
        return Branches(*_Overlaps.apply(phi, eta0))

    def fidelity(
        self,
        theta: torch.Tensor,
        masked: torch.Tensor,
        original: torch.Tensor,
        *,
        with_trash: bool = False,
        decoder: torch.Tensor | None = None,
    ):
        """The reset fidelity ``F`` for each image (and, ``with_trash``, ``P(trash = 0)``): the
        paper's quantity, from :meth:`branches`.

        Returns:
            ``(B,)`` real fidelities in [0, 1] (and ``(B,)`` trash-zero probabilities).
        """
        b = self.branches(theta, masked, original, decoder=decoder)
        return (b.fidelity, b.kept) if with_trash else b.fidelity

    def decoded(
        self,
        theta: torch.Tensor,
        masked: torch.Tensor,
        *,
        decoder: torch.Tensor | None = None,
        ancilla: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The decoder's unnormalized output per trash branch: ``out_t = <0_A| W V^dagger
        (phi_t (x) |0>_trash)`` (``W`` the identity without ancillas), differentiable.

        Returns:
            ``(B, T, 2**n)`` complex: ``sum_t ||out_t||^2`` is the kept fraction of the reset
            procedure (1 without ancillas), ``||out_0||^2`` that of the post-selected one.
        """
        reordered = self._reorder_rows(self.unitary(theta))
        back = reordered if decoder is None else self._reorder_rows(self.unitary(decoder))
        phi = self._normalize(masked, theta.device).to(self.dtype) @ reordered.transpose(0, 1)
        phi = phi.reshape(masked.shape[0], -1, 2 ** (self.num_qubits - len(self.trash_qubits)))
        # put each trash branch back at trash = 0 and decode: V^dagger (phi_t (x) |0>)
        out = phi @ back[: phi.shape[-1]].conj()  # (B, T, 2**n)
        if self.ancilla_stage is not None:
            if ancilla is None:
                raise ValueError(f"this engine's decoder has {self.ancillas} ancilla(s): pass their weights (ancilla=)")
            out = apply_stage(self.ancilla_stage, out, ancilla, self.ancillas)  # engines/ancilla_decoder.py
        return out

    def branches_from(self, out: torch.Tensor, original: torch.Tensor) -> Branches:
        """:class:`~qmae_qiskit.engines.Branches` from :meth:`decoded`'s output (one pass gives
        both the branches and the pixels); ``accepted`` is ``None`` without ancillas.

        Args:
            out: ``(B, T, 2**n)`` complex, from :meth:`decoded`.
            original: ``(B, 2**n)`` real references.
        """
        chi = self._normalize(original, out.device).to(out.dtype)
        overlap = (out @ chi.unsqueeze(-1)).squeeze(-1).abs().square()  # (B, T): |<chi|out_t>|^2 (chi real)
        norms = out.abs().square().sum(-1)  # (B, T)
        accepted = norms.sum(1)
        fidelity = overlap.sum(1) / torch.where(accepted > 0, accepted, torch.ones_like(accepted))
        return Branches(fidelity, overlap[:, 0], norms[:, 0], accepted if self.ancillas else None)

    def reconstruct(
        self,
        theta: torch.Tensor,
        masked: torch.Tensor,
        *,
        postselect: bool = False,
        decoder: torch.Tensor | None = None,
        ancilla: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pixel probabilities of the decoder's output (the diagonal of ``rho_out``), of the shots
        kept (with ancillas: those where they read 0).

        Args:
            postselect: keep only the trash = 0 branch (measure the trash and discard the other
                outcomes) instead of resetting it.
            decoder: the untied decoder's weights (``None``: ``U^dagger``).
            ancilla: the ancilla stage's weights (engines with ancillas).

        Returns:
            ``(B, 2**n)`` real, each row summing to 1 (0 for an all-zero input or nothing kept).
        """
        out = self.decoded(theta, masked, decoder=decoder, ancilla=ancilla)
        if postselect:
            out = out[:, :1]
        probs = out.abs().square().sum(1)
        if postselect or self.ancillas:
            total = probs.sum(1, keepdim=True)
            probs = probs / torch.where(total > 0, total, torch.ones_like(total))
        return probs
