"""Patch masks and the mask token: which pixels are hidden, and what replaces them.

A mask hides whole patches of the grid of ``patch_size`` (the paper: 16x16 image, one 8x8 patch =
25 %, one 8x4 patch = 12.5 %, two 8x8 patches = 50 %). Training draws a fresh random mask per image
per step (Algorithm 1, line 3); evaluation uses masks drawn once from a seed and saved, so that
QMAE and QAE are scored on the same masks.
"""

from __future__ import annotations

import operator
from fractions import Fraction

import torch

__all__ = [
    "parse_patch_size",
    "patch_grid",
    "num_masked_patches",
    "random_masks",
    "masks_from_patches",
    "mask_patches",
    "fill_masked",
    "token_image",
]


def parse_patch_size(value: str | int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``"8x4"``, ``8`` or ``(8, 4)`` -> ``(8, 4)`` (height, width).

    Raises:
        ValueError: not of that form, or not positive.
    """
    if isinstance(value, str):
        parts = value.lower().split("x")
        if len(parts) == 1:
            parts = parts * 2
        try:
            size = tuple(int(p) for p in parts)
        except ValueError:
            size = ()
    elif isinstance(value, int):
        size = (value, value)
    else:
        size = tuple(int(v) for v in value)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"patch size must look like '8x8' (height x width, positive), got {value!r}")
    return size[0], size[1]


def patch_grid(image_size: int, patch_size: tuple[int, int]) -> tuple[int, int]:
    """Rows and columns of patches.

    Raises:
        ValueError: a patch side that does not divide the image side.
    """
    ph, pw = patch_size
    if image_size % ph or image_size % pw:
        raise ValueError(
            f"patch size {ph}x{pw} does not tile a {image_size}x{image_size} image; each side must divide {image_size}"
        )
    return image_size // ph, image_size // pw


def num_masked_patches(mask_ratio: float, image_size: int, patch_size: tuple[int, int]) -> int:
    """How many patches a mask ratio hides.

    Raises:
        ValueError: a ratio that is not a whole number of patches (the message lists those that are).
    """
    rows, cols = patch_grid(image_size, patch_size)
    total = rows * cols
    count = mask_ratio * total
    if not 0 < mask_ratio < 1 or abs(count - round(count)) > 1e-9:
        possible = ", ".join(f"{float(Fraction(k, total)):g}" for k in range(1, total))
        raise ValueError(
            f"mask ratio {mask_ratio:g} is not a whole number of {patch_size[0]}x{patch_size[1]} patches "
            f"of a {image_size}x{image_size} image ({total} patches); possible ratios: {possible}"
        )
    return int(round(count))


def random_masks(
    batch: int,
    image_size: int,
    patch_size: tuple[int, int],
    num_masked: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A random patch mask per image.

    Returns:
        ``(batch, H, W)`` bool, True where a pixel is masked; ``num_masked`` patches per image,
        chosen uniformly without replacement.
    """
    try:
        count = operator.index(batch)  # ints, numpy and torch integers; not floats or bools' ambiguity
    except TypeError:
        count = -1
    if isinstance(batch, bool) or count < 0:
        raise ValueError(f"the number of masks must be an integer >= 0, got {batch!r}")
    batch = count
    rows, cols = patch_grid(image_size, patch_size)
    scores = torch.rand(batch, rows * cols, generator=generator)
    chosen = scores.argsort(dim=1)[:, :num_masked]  # a uniform random subset per image
    return masks_from_patches(chosen, image_size, patch_size).to(device)


def masks_from_patches(patches: torch.Tensor, image_size: int, patch_size: tuple[int, int]) -> torch.Tensor:
    """Pixel masks ``(B, H, W)`` from masked patch indices ``(B, k)`` (row-major on the patch grid)."""
    rows, cols = patch_grid(image_size, patch_size)
    patches = torch.as_tensor(patches, dtype=torch.long)
    grid = torch.zeros(patches.shape[0], rows * cols, dtype=torch.bool).scatter_(1, patches, True)
    ph, pw = patch_size
    return grid.reshape(-1, rows, cols).repeat_interleave(ph, 1).repeat_interleave(pw, 2)


def mask_patches(masks: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    """The masked patch indices ``(B, k)`` of pixel masks (the inverse of :func:`masks_from_patches`)."""
    ph, pw = patch_size
    grid = masks[:, ::ph, ::pw].flatten(1).cpu()
    return torch.stack([row.nonzero().flatten() for row in grid])


def single_patch_positions(masks: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    """``(B,)`` the masked patch's position of each mask (row-major on the patch grid), ``-1`` where a
    mask is not exactly one whole patch (what per-position weights and the linear fill need)."""
    ph, pw = patch_size
    masks = masks.cpu()
    grid = masks[:, ::ph, ::pw]
    whole = grid.repeat_interleave(ph, 1).repeat_interleave(pw, 2)
    ok = (grid.flatten(1).sum(1) == 1) & (whole == masks).flatten(1).all(1)
    positions = grid.flatten(1).to(torch.int64).argmax(1)
    return torch.where(ok, positions, torch.full_like(positions, -1))


def token_image(token: torch.Tensor, image_size: int) -> torch.Tensor:
    """The ``(H, W)`` image a token writes into masked pixels.

    A shared token ``(Hp, Wp)`` (one value per pixel of a patch) is tiled: pixel ``(r, c)`` takes
    ``token[r % Hp, c % Wp]``, so every masked patch gets the whole token. A per-patch token
    ``(P, Hp, Wp)`` has one ``(Hp, Wp)`` token per patch position (row-major on the patch grid).
    """
    if token.dim() == 2:
        ph, pw = token.shape
        return token.repeat(image_size // ph, image_size // pw)
    _, ph, pw = token.shape
    rows, cols = image_size // ph, image_size // pw
    return token.reshape(rows, cols, ph, pw).permute(0, 2, 1, 3).reshape(image_size, image_size)


def fill_masked(images: torch.Tensor, mask: torch.Tensor, token: torch.Tensor | None) -> torch.Tensor:
    """Replace the masked pixels by the token (QMAE) or by 0 (QAE, ``token=None``).

    Args:
        images: ``(B, H, W)``.
        mask: ``(B, H, W)`` bool.
        token: ``(Hp, Wp)`` (shared), ``(P, Hp, Wp)`` (one per patch position; see
            :func:`token_image`) or ``None``.

    Returns:
        ``(B, H, W)`` images (differentiable in ``token``).
    """
    if token is None:
        return images.masked_fill(mask, 0.0)
    return torch.where(mask, token_image(token, images.shape[-1]).to(images.dtype), images)
