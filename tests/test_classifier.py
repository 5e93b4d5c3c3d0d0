import pytest
import torch

from qmae_qiskit.classifier import ClassifierOptions, accuracy, cached_classifier, resnet18_16x16
from qmae_qiskit.data import load_mnist


def test_resnet18_is_adapted_to_16x16_grayscale():
    model = resnet18_16x16()
    assert model.conv1.in_channels == 1 and isinstance(model.maxpool, torch.nn.Identity)
    assert model(torch.rand(3, 1, 16, 16)).shape == (3, 10)


@pytest.mark.slow
def test_classifier_learns_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    train, test = load_mnist("train", limit=1000), load_mnist("test", limit=300)
    options = ClassifierOptions(epochs=3, batch_size=25, lr=0.05)
    model, path = cached_classifier(train, options, progress=False)
    acc, err = accuracy(model, test.images, test.labels)
    assert acc > 0.6 and 0 < err < 0.05  # far above chance (10 %) after 120 steps
    again, same_path = cached_classifier(train, options, progress=False)  # loaded, not retrained
    assert same_path == path and path.is_file()
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_a_classifier_trained_inside_a_command_says_so_and_how_long(tmp_path, monkeypatch, caplog):
    """Issue 24, item 5: the first accuracy trains the classifier; it says what, how to do it ahead,
    and (without a progress bar) the minutes left after the first steps."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    train = load_mnist("train", limit=60)
    with caplog.at_level("WARNING", logger="qmae_qiskit.classifier"):
        cached_classifier(train, ClassifierOptions(epochs=1, batch_size=2), progress=False)
    text = caplog.text
    assert "training the ResNet18 classifier behind every accuracy on 60 images" in text
    assert "qmae classifier train does it ahead" in text and "--no-accuracy skips it" in text
    assert "minute(s) left (20 of 30 steps done)" in text
    caplog.clear()
    with caplog.at_level("WARNING", logger="qmae_qiskit.classifier"):
        cached_classifier(train, ClassifierOptions(epochs=1, batch_size=2), progress=False)  # cached: silent
    assert "training the ResNet18" not in caplog.text
