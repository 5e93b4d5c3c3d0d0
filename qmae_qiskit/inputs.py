"""What a model accepts as images and masks: one check, with messages that name the fix.

Every public method of a model that takes images (fidelity, reconstruction, features, the
circuits' parameter values) passes them through :func:`check_images_and_mask` first, so a bad
batch is refused in one line before it reaches torch or Qiskit.
"""

from __future__ import annotations

import torch

__all__ = ["check_images_and_mask"]


def check_images_and_mask(
    images: torch.Tensor, mask: torch.Tensor, *, image_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, mask)`` checked: float images in [0, 1] of shape ``(B, S, S)`` with a lit pixel
    each, and a boolean mask of the same shape on the images' device.

    Args:
        images: ``(B, S, S)`` pixels in [0, 1] (integer tensors other than uint8 are cast to float).
        mask: ``(B, S, S)`` bool, or 0/1 values.
        image_size: ``S``, the model's image side.

    Returns:
        ``(images, mask)``: floating images, a bool mask on their device.

    Raises:
        ValueError: a wrong shape, uint8 or out-of-range pixels, NaN or inf, an all-zero image, or
            a mask that is not boolean.
    """
    images = torch.as_tensor(images)
    mask = torch.as_tensor(mask)
    s = image_size
    if images.dim() != 3:
        raise ValueError(f"images must be a (batch, {s}, {s}) tensor, got shape {tuple(images.shape)}")
    if images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be square, got {images.shape[1]}x{images.shape[2]}")
    if images.shape[1] != s:
        raise ValueError(
            f"this model takes {s}x{s} images, got {images.shape[1]}x{images.shape[2]}; resize them "
            "(qmae_qiskit.data does)"
        )
    if images.shape[0] == 0:
        raise ValueError(f"images is an empty batch (shape {tuple(images.shape)}); pass at least one image")
    if images.dtype == torch.uint8:
        raise ValueError("images are uint8 (0-255); pass float pixels in [0, 1] (images / 255)")
    if not torch.is_floating_point(images):
        images = images.float()
    if torch.isnan(images).any() or torch.isinf(images).any():
        raise ValueError("images contain NaN or inf pixels")
    if (images > 1 + 1e-6).any():
        # the token and every default live on the [0, 1] scale: 0-255 pixels would silently change the fill
        raise ValueError(
            f"images have pixels above 1 (max {images.max().item():g}); pixels are in [0, 1]: divide by 255 "
            "(qmae_qiskit.data.resize does)"
        )
    if (images < 0).any():
        raise ValueError("images contain negative pixels; amplitude embedding here needs pixels >= 0 (scale to [0, 1])")
    empty = images.flatten(1).sum(1) == 0
    if empty.any():
        raise ValueError(f"image(s) {empty.nonzero().flatten().tolist()} are all zero and cannot be amplitude-embedded")
    if mask.shape != images.shape:
        raise ValueError(f"mask must have the images' shape {tuple(images.shape)}, got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        if ((mask != 0) & (mask != 1)).any():
            raise ValueError("mask must be boolean (True = masked pixel)")
        mask = mask.bool()
    return images, mask.to(images.device)
