"""The linear fill: the classical inpainting anchor every quantum number is measured against.

One ridge regression per patch position, from the visible pixels to the masked patch's pixels,
fitted on the training split (scikit-learn's :class:`~sklearn.linear_model.Ridge`). Its
regularisation is chosen on held-out *training* images (the last ``holdout`` fraction), then the
map is refitted on all of them. It is the simplest inpainting that uses the context, and the
first baseline a reviewer asks for next to "pasting the mean image into the patch".

Defined for masks of one whole patch per image (the 25 % setting of a 16x16 image with 8x8
patches); other masks are refused with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .masking import masks_from_patches, patch_grid, single_patch_positions

__all__ = ["ALPHAS", "LinearFill", "fit_linear_fill"]

ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass(frozen=True)
class LinearFill:
    """A fitted per-position ridge fill.

    Attributes:
        alpha: the regularisation chosen on the held-out training images.
        coef: ``(P, patch_pixels, visible_pixels)`` one map per patch position.
        intercept: ``(P, patch_pixels)``.
        image_size: image side.
        patch_size: ``(height, width)``.
        holdout_masked_mse: the held-out masked-pixel MSE of each alpha tried, ``{alpha: mse}``.
    """

    alpha: float
    coef: torch.Tensor
    intercept: torch.Tensor
    image_size: int
    patch_size: tuple[int, int]
    holdout_masked_mse: dict[float, float]

    def fill(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """``images`` with each masked patch predicted from the visible pixels, clipped to [0, 1].

        Raises:
            ValueError: a mask that is not one whole patch, or images of another size.
        """
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"the linear fill was fitted on {self.image_size}x{self.image_size} images")
        positions = _positions(masks, self.patch_size)
        out = images.clone().double()
        for p in positions.unique().tolist():
            rows = (positions == p).nonzero().flatten()
            patch = _patch_mask(p, self.image_size, self.patch_size)
            x = images[rows].flatten(1)[:, ~patch].double()
            y = x @ self.coef[p].T + self.intercept[p]
            flat = out[rows].flatten(1)
            flat[:, patch] = y.clamp(0, 1)
            out[rows] = flat.reshape(-1, self.image_size, self.image_size)
        return out.to(images.dtype)


def _patch_mask(position: int, image_size: int, patch_size: tuple[int, int]) -> torch.Tensor:
    return masks_from_patches(torch.tensor([[position]]), image_size, patch_size)[0].flatten()


def _positions(masks: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    positions = single_patch_positions(masks, patch_size)
    if (positions < 0).any():
        raise ValueError("the linear fill is defined for masks of one whole patch per image (e.g. 25 % of 16x16, 8x8)")
    return positions


def fit_linear_fill(
    images: torch.Tensor,
    *,
    patch_size: tuple[int, int],
    alphas: Sequence[float] = ALPHAS,
    holdout: float = 0.1,
) -> LinearFill:
    """Fit the per-position ridge fill on training images.

    Args:
        images: ``(N, H, W)`` training images in [0, 1].
        patch_size: the patch ``(height, width)``.
        alphas: the regularisations tried.
        holdout: the fraction of ``images`` (the last ones) the alpha is chosen on.

    Returns:
        A :class:`LinearFill`, refitted on all ``images`` with the chosen alpha.

    Raises:
        ValueError: too few images, a bad holdout fraction, or no alpha.
    """
    from sklearn.linear_model import Ridge

    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be a fraction in (0, 1), got {holdout!r}")
    if not alphas:
        raise ValueError("alphas is empty: give at least one regularisation")
    size = images.shape[-1]
    rows, cols = patch_grid(size, patch_size)
    cut = int(len(images) * (1 - holdout))
    if cut < 2 or cut >= len(images):
        raise ValueError(f"the linear fill needs enough training images for a fit and a holdout, got {len(images)}")
    flat = images.flatten(1).double().numpy()
    patches = [_patch_mask(p, size, patch_size).numpy() for p in range(rows * cols)]
    scores: dict[float, float] = {}
    for alpha in alphas:
        errors = []
        for patch in patches:
            fit = Ridge(alpha=alpha).fit(flat[:cut, ~patch], flat[:cut, patch])
            pred = np.clip(fit.predict(flat[cut:, ~patch]), 0, 1)
            errors.append(np.mean((pred - flat[cut:, patch]) ** 2))
        scores[float(alpha)] = float(np.mean(errors))
    best = min(scores, key=lambda a: scores[a])
    fits = [Ridge(alpha=best).fit(flat[:, ~patch], flat[:, patch]) for patch in patches]
    coef = torch.tensor(np.stack([f.coef_ for f in fits]))
    intercept = torch.tensor(np.stack([f.intercept_ for f in fits]))
    return LinearFill(best, coef, intercept, size, tuple(patch_size), scores)  # type: ignore[arg-type]
