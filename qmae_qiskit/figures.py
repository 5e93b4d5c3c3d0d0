"""Figures the library writes to disk (loss curves, image grids), drawn without pyplot.

A library must not change the caller's matplotlib backend: ``matplotlib.use("Agg")`` inside
``train(...)`` would switch a Jupyter notebook's inline backend off, and its later plots would
never show. So every saved figure here is a bare :class:`matplotlib.figure.Figure` (no pyplot
state, no global backend) written atomically with ``Figure.savefig``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .checkpoint import atomic_write

__all__ = ["new_figure", "save_figure", "save_loss_plot", "save_image_grid"]


def new_figure(rows: int = 1, cols: int = 1, *, figsize: tuple[float, float], squeeze: bool = True) -> tuple[Any, Any]:
    """``(figure, axes)`` like ``pyplot.subplots``, but detached from pyplot's global state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols, squeeze=squeeze)


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 110) -> None:
    """Write ``fig`` as a PNG atomically (a reader never sees half an image)."""
    fig.tight_layout()
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi))


def save_loss_plot(
    history: Sequence[dict[str, Any]], path: str | os.PathLike, *, title: str, ylabel: str = "loss"
) -> None:
    """The training loss per step and its running mean (``loss.png`` of a run). No-op without steps."""
    if not history:
        return
    fig, ax = new_figure(figsize=(6, 3.5))
    steps = [h["step"] for h in history]
    loss = np.array([h["loss"] for h in history])
    ax.plot(steps, loss, lw=0.6, alpha=0.5, label="batch")
    window = max(1, len(history) // 50)
    ax.plot(
        steps[window - 1 :],
        np.convolve(loss, np.ones(window) / window, mode="valid"),
        lw=1.5,
        label=f"mean of {window}",
    )
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    save_figure(fig, path, dpi=120)


def save_image_grid(
    rows: Sequence[tuple[str, Any]], path: str | os.PathLike, *, columns: int | None = None, scale: bool = False
) -> None:
    """A grid of grayscale images: one labelled row per ``(label, images)`` pair.

    Args:
        rows: ``(label, images)`` with ``images`` a ``(N, H, W)`` array or tensor in [0, 1].
        path: the PNG to write.
        columns: images per row (default: all of the first row's).
        scale: stretch each image to its own range instead of the fixed [0, 1].
    """
    columns = columns or len(rows[0][1])
    fig, axes = new_figure(len(rows), columns, figsize=(1.5 * columns, 1.6 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            image = np.asarray(images[c], dtype=float)
            ax.imshow(image, cmap="gray", **({} if scale else {"vmin": 0, "vmax": 1}))
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=8)
    save_figure(fig, path)
