import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from qmae_qiskit.metrics import cosine_similarity, psnr, scale_reconstruction, ssim, ssim_torchmetrics


@pytest.fixture
def batch(mnist16):
    images = mnist16[:6].double()
    mask = torch.zeros_like(images, dtype=torch.bool)
    mask[:, :8, :8] = True
    return images, mask


def test_visible_scaling_recovers_a_proportional_reconstruction(batch):
    images, mask = batch
    unit = images / images.flatten(1).norm(dim=1)[:, None, None]
    torch.testing.assert_close(scale_reconstruction(unit, images, mask, method="visible"), images)
    torch.testing.assert_close(scale_reconstruction(unit, images, mask, method="oracle"), images)


def test_visible_scaling_reads_only_visible_pixels(batch):
    images, mask = batch
    unit = images / images.flatten(1).norm(dim=1)[:, None, None]
    tampered = images.clone()
    tampered[mask] = 0.123  # the hidden pixels must not matter
    torch.testing.assert_close(scale_reconstruction(unit, tampered, mask), scale_reconstruction(unit, images, mask))
    with pytest.raises(ValueError, match="unknown scaling"):
        scale_reconstruction(unit, images, mask, method="peek")


def test_ssim_and_psnr_match_scikit_image(batch):
    images, _ = batch
    noisy = (
        images + 0.1 * torch.rand(images.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ).clamp(0, 1)
    expected_ssim = [
        structural_similarity(a, b, data_range=1.0, win_size=7) for a, b in zip(noisy.numpy(), images.numpy())
    ]
    expected_psnr = [peak_signal_noise_ratio(b, a, data_range=1.0) for a, b in zip(noisy.numpy(), images.numpy())]
    np.testing.assert_allclose(ssim(noisy, images).numpy(), expected_ssim, rtol=1e-12)
    np.testing.assert_allclose(psnr(noisy, images).numpy(), expected_psnr, rtol=1e-12)
    assert torch.allclose(ssim_torchmetrics(images, images), torch.ones(len(images), dtype=torch.float64), atol=1e-5)
    assert (ssim_torchmetrics(noisy, images) < 0.999).all()


def test_cosine_similarity_bounds(batch):
    images, _ = batch
    torch.testing.assert_close(cosine_similarity(images, 3 * images), torch.ones(len(images), dtype=torch.float64))
    assert cosine_similarity(torch.zeros_like(images), images).eq(0).all()
