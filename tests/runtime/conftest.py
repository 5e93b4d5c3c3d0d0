"""What the runtime tests share: a small trained run (4x4 images, 4 qubits) to submit."""

import pytest

from qmae_qiskit.training import train


@pytest.fixture(scope="module")
def run4(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "qmae4"
    train(out=out, image_size=4, patch_size="2x2", epochs=1, limit=256, batch_size=32, eval_limit=0, progress=False)
    return out
