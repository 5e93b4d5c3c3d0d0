import pytest
import torch

from qmae_qiskit.classifier import ClassifierOptions, SmallMapConv2d, accuracy, cached_classifier, resnet18_16x16
from qmae_qiskit.data import load_mnist


def test_resnet18_is_adapted_to_16x16_grayscale():
    model = resnet18_16x16()
    assert model.conv1.in_channels == 1 and isinstance(model.maxpool, torch.nn.Identity)
    assert model(torch.rand(3, 1, 16, 16)).shape == (3, 10)


def test_resnet18_keeps_torchvisions_parameters_and_every_3x3_conv_is_a_small_map_conv():
    """The speed-up changes no weight: the same state_dict keys and shapes as torchvision's model."""
    from torchvision.models import resnet18

    model, reference = resnet18_16x16(), resnet18(weights=None, num_classes=10)
    ours = {k: v.shape for k, v in model.state_dict().items() if not k.startswith("conv1.")}
    assert ours == {k: v.shape for k, v in reference.state_dict().items() if not k.startswith("conv1.")}
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 16 and all(isinstance(m, SmallMapConv2d) for m in convs)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (1, 2), (2, 1), (3, 3), (4, 4), (8, 8)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_small_map_conv_equals_conv2d_outputs_and_gradients(size, stride, bias):
    """On the maps it computes as one matrix product (at most 2x2) and on every other size, the
    same outputs and gradients as torch.nn.Conv2d with its weights."""
    torch.manual_seed(size[0] * 100 + size[1] * 10 + stride)
    conv = torch.nn.Conv2d(6, 5, 3, stride=stride, padding=1, bias=bias).double()
    fast = SmallMapConv2d(6, 5, 3, stride=stride, padding=1, bias=bias).double()
    fast.weight = torch.nn.Parameter(conv.weight.detach().clone())
    if bias:
        fast.bias = torch.nn.Parameter(conv.bias.detach().clone())
    x = torch.randn(4, 6, *size, dtype=torch.float64)
    grad_out = torch.randn_like(conv(x))
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    torch.testing.assert_close(fast(xb), conv(xa), atol=1e-12, rtol=0)
    conv(xa).backward(grad_out)
    fast(xb).backward(grad_out)
    torch.testing.assert_close(xb.grad, xa.grad, atol=1e-12, rtol=0)
    torch.testing.assert_close(fast.weight.grad, conv.weight.grad, atol=1e-12, rtol=0)
    if bias:
        torch.testing.assert_close(fast.bias.grad, conv.bias.grad, atol=1e-12, rtol=0)


def test_small_map_conv_in_the_training_layout():
    """float32, channels_last (as train_classifier runs it): outputs, the input's and the weight's
    gradients as Conv2d's, and the weight's gradient in the weight's own layout (no copy when the
    optimizer accumulates it)."""
    torch.manual_seed(3)
    conv = torch.nn.Conv2d(32, 48, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    fast = SmallMapConv2d(32, 48, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    fast.weight = torch.nn.Parameter(conv.weight.detach().clone())
    x = torch.randn(16, 32, 2, 2).contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = fast(xb)
    torch.testing.assert_close(out, conv(xa), atol=1e-5, rtol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)
    grad_out = torch.randn_like(out)
    conv(xa).backward(grad_out)
    out.backward(grad_out)
    torch.testing.assert_close(xb.grad, xa.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.weight.grad, conv.weight.grad, atol=1e-5, rtol=1e-5)
    assert fast.weight.grad.stride() == fast.weight.stride()


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
