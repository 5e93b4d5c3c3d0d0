"""Shared fixtures: real MNIST images from the embedded default (no network, no flag), and the full
MNIST for the tests that need it, found the way a user's machine finds it.

Full MNIST is looked for in ``$QMAE_DATA_DIR``, then ``../shared/data/mnist`` next to the project,
then torchvision's download into the user cache. Where none is available the tests that need it
are skipped, with one summary line saying how to provide the data; with ``QMAE_REQUIRE_DATA=1``
(what ``.ci/run`` sets) they fail instead, so CI can never go green without them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from qmae_qiskit.data import DataError, default_cache_dir, load_mnist

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_DATA = "QMAE_REQUIRE_DATA"
_MISSING: list[str] = []  # why full MNIST is unavailable, once per session


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


def _has_mnist(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    return all((raw / f).is_file() for f in ("t10k-images-idx3-ubyte", "train-images-idx3-ubyte"))


def _find_full_mnist() -> Path | None:
    env = [Path(os.environ["QMAE_DATA_DIR"])] if os.environ.get("QMAE_DATA_DIR") else []
    candidates = env + [ROOT.parent / "shared" / "data" / "mnist", default_cache_dir() / "data"]  # $QMAE_DATA_DIR first
    for candidate in candidates:
        if _has_mnist(candidate):
            return candidate.resolve()
    try:  # the way a user with internet gets it
        load_mnist("test", download=True, limit=10)
    except DataError as exc:
        _MISSING.append(str(exc).splitlines()[0])
        return None
    return default_cache_dir() / "data"


@pytest.fixture(scope="session")
def full_mnist() -> Path:
    """A directory with the full MNIST test split in torchvision's layout (skips without one)."""
    found = _find_full_mnist()
    if found is None:
        message = "full MNIST not found ($QMAE_DATA_DIR, ../shared/data/mnist, or a download into the user cache)"
        if os.environ.get(REQUIRE_DATA):
            pytest.fail(f"{message}; {REQUIRE_DATA} is set, so this is a failure: {_MISSING[-1] if _MISSING else ''}")
        pytest.skip(message)
    return found


# Integration tests beyond `make test`'s budget (minutes on 2 cores): `make test` deselects them
# (-m "not slow"), `make test-slow` runs them, and CI runs both. Whole files, and every test that
# needs full MNIST (a newcomer's machine has the embedded sample only).
SLOW_FILES = {
    "test_notebooks.py",
    "test_study.py",
    "test_reproduce.py",
    "test_bench.py",
    "test_hardware_benchmark.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SLOW_FILES or "full_mnist" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "full MNIST not found" in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} tests skipped because full MNIST is not on this machine and could not be downloaded: "
            "set QMAE_DATA_DIR to a directory in torchvision's MNIST layout (DIR/MNIST/raw/*-ubyte), or run once "
            "with internet (`qmae train --download ...` fills the user cache)",
            yellow=True,
        )
