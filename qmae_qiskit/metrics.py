"""Image metrics of the paper's section 4.2.2, and how a unit-norm state becomes an image.

Scaling. The decoder's output is a normalized state; an image needs pixel values, and the paper
does not say how it rescaled. The default here, ``"visible"``, uses only what is known at
inference time: the least-squares scale that best fits the *visible* (unmasked) pixels of the
input, ``s = <r_v, x_v> / <r_v, r_v>``, then clips to [0, 1]. ``"oracle"`` multiplies by the norm
of the unmasked original (unknowable at inference) and is only ever reported in its own column.

SSIM and PSNR come from scikit-image (``structural_similarity`` with ``win_size=7``, gaussian
weights off, ``data_range=1.0``; ``peak_signal_noise_ratio`` with ``data_range=1.0``). SSIM is also
computed as the paper's library does it (torchmetrics' ``structural_similarity_index_measure``
with its defaults: 11x11 gaussian window, sigma 1.5, data range taken from the images), so a
reader can see how much the definition alone moves the number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "SCALINGS",
    "scale_reconstruction",
    "composite_image",
    "cosine_similarity",
    "ssim",
    "ssim_torchmetrics",
    "psnr",
    "MetricSummary",
    "image_metrics",
    "mean_stderr",
    "masked_psnr",
    "masked_cosine_similarity",
    "state_fidelity",
    "paired_interval",
    "Interval",
]

SCALINGS = ("visible", "oracle")
SSIM_WINDOW = 7


def scale_reconstruction(
    recon: torch.Tensor, images: torch.Tensor, mask: torch.Tensor, *, method: str = "visible"
) -> torch.Tensor:
    """Pixel values from the decoder's unit-norm amplitudes.

    Args:
        recon: ``(B, H, W)`` non-negative amplitudes (``QMAE.reconstruct``).
        images: ``(B, H, W)`` originals (``"visible"`` reads only their unmasked pixels).
        mask: ``(B, H, W)`` bool, True where masked.
        method: ``"visible"`` (default, inference-time) or ``"oracle"`` (norm of the original).

    Returns:
        ``(B, H, W)`` in [0, 1].

    Raises:
        ValueError: unknown method.
    """
    if method not in SCALINGS:
        raise ValueError(f"unknown scaling {method!r}; choose one of {', '.join(SCALINGS)}")
    r, x = recon.flatten(1).double(), images.flatten(1).double()
    if method == "visible":
        visible = (~mask).flatten(1).double()
        num = (r * x * visible).sum(1)
        den = (r * r * visible).sum(1)
        scale = torch.where(den > 0, num / den.clamp_min(1e-30), torch.zeros_like(num))
    else:
        scale = x.norm(dim=1) / r.norm(dim=1).clamp_min(1e-30)
    return (r * scale[:, None]).clamp(0, 1).reshape(recon.shape).to(recon.dtype)


def composite_image(recon: torch.Tensor, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The *composite*: the visible pixels of ``images`` kept, the reconstruction's masked pixels
    pasted in at the ``"visible"`` scale (:func:`scale_reconstruction`). This is how classical
    masked autoencoders present inpainting (He et al. show "reconstruction + visible"): the
    visible pixels are known, only the patch is the model's. Its masked PSNR is the
    reconstruction's; on hardware only the patch's values come from sampled probabilities.

    Args:
        recon: ``(B, H, W)`` non-negative amplitudes (``QMAE.reconstruct``).
        images: ``(B, H, W)`` originals.
        mask: ``(B, H, W)`` bool, True where masked.

    Returns:
        ``(B, H, W)`` in [0, 1], differentiable in ``recon``.
    """
    return torch.where(mask, scale_reconstruction(recon, images, mask, method="visible"), images.to(recon.dtype))


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image cosine similarity of flattened images (0 where either is all zero)."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    den = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(den > 0, (a * b).sum(1) / den.clamp_min(1e-30), torch.zeros_like(den))


def masked_psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB (``data_range=1.0``) over the masked pixels only: where the filling happens."""
    m = mask.flatten(1).double()
    mse = ((a.double() - b.double()).square().flatten(1) * m).sum(1) / m.sum(1).clamp_min(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def masked_cosine_similarity(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image cosine similarity of the masked pixels only (0 where either is all zero there)."""
    m = mask.flatten(1)
    return cosine_similarity(a.flatten(1) * m, b.flatten(1) * m)


def state_fidelity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image ``|<a|b>|^2 / (||a||^2 ||b||^2)``: the fidelity of the two amplitude embeddings
    (0 where either is all zero). For a filled input and its original this is the *pass-through*
    fidelity, what an autoencoder that returned its input unchanged would score."""
    return cosine_similarity(a, b).square()


def _window(size: int, preferred: int) -> int:
    """The SSIM window: ``preferred``, or the largest odd side that fits a smaller image (4x4: 3)."""
    return min(preferred, size if size % 2 else size - 1)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM, scikit-image ``structural_similarity(data_range=1.0, win_size=7)`` (a
    smaller odd window on images smaller than 7x7)."""
    from skimage.metrics import structural_similarity

    win = _window(a.shape[-1], SSIM_WINDOW)
    a_np, b_np = a.double().numpy(), b.double().numpy()
    return torch.tensor([structural_similarity(x, y, data_range=1.0, win_size=win) for x, y in zip(a_np, b_np)])


def ssim_torchmetrics(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM as torchmetrics computes it with its defaults (the paper's library; its
    11x11 gaussian window shrinks to the largest odd side on images smaller than that)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    kernel = _window(a.shape[-1], 11)
    sigma = 1.5 * kernel / 11  # torchmetrics sizes its gaussian window from sigma: keep it within the image
    out = structural_similarity_index_measure(
        a.unsqueeze(1).float(), b.unsqueeze(1).float(), reduction="none", kernel_size=kernel, sigma=sigma
    )
    assert isinstance(out, torch.Tensor)  # a tuple only with return_full_image / return_contrast_sensitivity
    return out.double()


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB with ``data_range=1.0`` (scikit-image's formula, vectorized)."""
    mse = (a.double() - b.double()).square().flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


class MetricSummary(NamedTuple):
    """Mean and standard error of the mean of one metric."""

    mean: float
    stderr: float


def mean_stderr(values: torch.Tensor) -> MetricSummary:
    v = values.double()
    return MetricSummary(v.mean().item(), (v.std(unbiased=True) / max(len(v), 1) ** 0.5).item() if len(v) > 1 else 0.0)


def image_metrics(
    recon_scaled: torch.Tensor,
    images: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    torchmetrics_ssim: bool = True,
    with_ssim: bool = True,
) -> Mapping[str, torch.Tensor]:
    """Per-image ``cosine_similarity``, ``ssim``, ``psnr`` (and ``ssim_torchmetrics``), and with a
    ``mask`` the inpainting metrics ``masked_psnr`` and ``masked_cosine_similarity``."""
    out = {"cosine_similarity": cosine_similarity(recon_scaled, images), "psnr": psnr(recon_scaled, images)}
    if with_ssim:
        out["ssim"] = ssim(recon_scaled, images)
        if torchmetrics_ssim:
            out["ssim_torchmetrics"] = ssim_torchmetrics(recon_scaled, images)
    if mask is not None:
        out["masked_psnr"] = masked_psnr(recon_scaled, images, mask)
        out["masked_cosine_similarity"] = masked_cosine_similarity(recon_scaled, images, mask)
    return out


class Interval(NamedTuple):
    """A mean difference and its confidence interval."""

    mean: float
    low: float
    high: float
    samples: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_interval(
    a: torch.Tensor | Sequence[float] | np.ndarray,
    b: torch.Tensor | Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
) -> Interval:
    """The ``level`` confidence interval of ``mean(a - b)`` for paired samples (Student's t).

    Pair what varies together: per image on the same masks, or per seed (then the interval
    carries the seed-to-seed spread of training, with few degrees of freedom).

    Raises:
        ValueError: unpaired lengths or fewer than two pairs.
    """
    from scipy.stats import t

    d = torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)
    if d.dim() != 1 or len(d) < 2:
        raise ValueError(
            f"a paired interval needs two equal-length sequences of >= 2 values, got shape {tuple(d.shape)}"
        )
    mean, half = d.mean().item(), 0.0
    sd = d.std(unbiased=True).item()
    if sd > 0:
        half = float(t.ppf(0.5 + level / 2, len(d) - 1)) * sd / len(d) ** 0.5
    return Interval(mean, mean - half, mean + half, len(d))


PAULI_KINDS = ("pauli1", "pauli2")  # 1-local, or 1- and 2-local Pauli observables


def pauli_labels(num_qubits: int, qubits: Sequence[int], kind: str = "pauli2") -> list[str]:
    """Qiskit labels (qubit 0 rightmost) of the observables :func:`pauli_expectations` returns, in
    its order: X, Y, Z on each of ``qubits``, then (``"pauli2"``) the 9 products on each pair
    ``i < j`` of them, ``P_i P_j`` with ``P_i`` in X, Y, Z major. ``3k + 9k(k-1)/2`` in all."""
    if kind not in PAULI_KINDS:
        raise ValueError(f"kind must be one of {', '.join(PAULI_KINDS)}, got {kind!r}")
    labels = []

    def label(ops: dict[int, str]) -> str:
        return "".join(ops.get(q, "I") for q in range(num_qubits - 1, -1, -1))

    for q in qubits:
        labels += [label({q: p}) for p in "XYZ"]
    if kind == "pauli2":
        for a, i in enumerate(qubits):
            for j in qubits[a + 1 :]:
                labels += [label({i: p, j: r}) for p in "XYZ" for r in "XYZ"]
    return labels


def pauli_expectations(
    states: torch.Tensor, num_qubits: int, qubits: Sequence[int], kind: str = "pauli2"
) -> torch.Tensor:
    """Expectation values ``<psi|P|psi>`` of the observables :func:`pauli_labels` names, for a
    batch of pure states ``(B, 2**n)`` (Qiskit's index order: qubit ``q`` is bit ``q``), from the
    one- and two-qubit reduced density matrices. ``(B, F)`` real, in [-1, 1]."""
    if kind not in PAULI_KINDS:
        raise ValueError(f"kind must be one of {', '.join(PAULI_KINDS)}, got {kind!r}")
    batch = states.shape[0]
    psi = states.reshape(batch, *([2] * num_qubits))  # axis 1 + (n - 1 - q) is qubit q
    cdtype = psi.dtype if psi.is_complex() else torch.complex128
    psi = psi.to(cdtype)
    paulis = torch.tensor(
        [[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=cdtype, device=psi.device
    )  # X, Y, Z

    def reduced(which: Sequence[int]) -> torch.Tensor:
        axes = [1 + num_qubits - 1 - q for q in which]
        moved = torch.movedim(psi, axes, list(range(1, 1 + len(axes)))).reshape(batch, 2 ** len(axes), -1)
        return moved @ moved.conj().transpose(1, 2)  # (B, d, d), rows (P_first, P_second) major

    out = []
    for q in qubits:
        rho = reduced([q])
        out.append(torch.einsum("bij,pji->bp", rho, paulis).real)
    if kind == "pauli2":
        pairs = torch.einsum("pab,rcd->pracbd", paulis, paulis).reshape(9, 4, 4)  # kron(P_i, P_j)
        for a, i in enumerate(qubits):
            for j in qubits[a + 1 :]:
                rho = reduced([i, j])
                out.append(torch.einsum("bij,pji->bp", rho, pairs).real)
    return torch.cat(out, dim=1)
