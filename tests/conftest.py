"""Shared fixtures: real MNIST images from the embedded default (no network, no flag)."""

from __future__ import annotations

import pytest
import torch

from qmae_qiskit.data import load_mnist


@pytest.fixture(scope="session")
def mnist16() -> torch.Tensor:
    """12 real 16x16 test images (black borders included)."""
    return load_mnist("test", image_size=16, limit=12).images


@pytest.fixture(scope="session")
def mnist4() -> torch.Tensor:
    """10 real MNIST images resized to 4x4 (n = 4 qubits: small enough for density matrices)."""
    return load_mnist("test", image_size=4, limit=10).images


@pytest.fixture(scope="session")
def mnist8() -> torch.Tensor:
    """8 real 8x8 images (n = 6), black borders included."""
    return load_mnist("test", image_size=8, limit=8).images
