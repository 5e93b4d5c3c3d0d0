"""The ResNet18 digit classifier the paper scores reconstructions with (section 4.2.2).

torchvision's ResNet18 for 16x16 grayscale: one input channel and the first max-pool replaced by
the identity, as in the paper. Trained once on the training split and cached in the user's cache
directory, keyed by the data and the options, so ``qmae reproduce`` and ``qmae evaluate`` reuse it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import atomic_write
from .data import ImageSet

__all__ = [
    "SmallMapConv2d",
    "ClassifierOptions",
    "resnet18_16x16",
    "train_classifier",
    "cached_classifier",
    "accuracy",
    "classifier_cache_dir",
]

log = logging.getLogger(__name__)
ESTIMATE_AFTER = 20  # steps timed before the estimate of the time left


@dataclass(frozen=True)
class ClassifierOptions:
    """Training options (part of the cache key).

    The defaults (8 epochs at batch 128, peak lr 0.1) gave 99.15 % on the clean MNIST test split
    (README) and 99.22 % in ``qmae bench --only classifier``, training on the 24,345 images at hand in
    262 s on a 2-core AVX-512 machine (stop 31; docs/benchmarks.md). Shorter recipes chosen on
    held-out *training* images (fewer epochs, batch 256) did not keep 99 % on the test split.

    Attributes:
        epochs: passes over the training images.
        batch_size: images per SGD step.
        lr: peak learning rate of the one-cycle schedule (SGD, momentum 0.9, weight decay 5e-4).
        shift: random translation by up to this many pixels (augmentation).
        seed: seeds initialization, order and augmentation.
    """

    epochs: int = 8
    batch_size: int = 128
    lr: float = 0.1
    shift: int = 1
    seed: int = 0


@cache
def _taps(height: int, width: int, stride: int) -> tuple[int, int, tuple[tuple[int, int, int, int], ...]]:
    """Which input position each output position of a 3x3, padding-1 convolution sees, and through
    which tap: ``(out_h, out_w, ((o, p, ky, kx), ...))`` with positions numbered row-major."""
    out_h, out_w = (height - 1) // stride + 1, (width - 1) // stride + 1
    taps = []
    for o in range(out_h * out_w):
        out_row, out_col = divmod(o, out_w)
        for p in range(height * width):
            row, col = divmod(p, width)
            ky, kx = row - out_row * stride + 1, col - out_col * stride + 1
            if 0 <= ky <= 2 and 0 <= kx <= 2:
                taps.append((o, p, ky, kx))
    return out_h, out_w, tuple(taps)


class _SmallMapConv(torch.autograd.Function):
    """A 3x3, padding-1 convolution on a map of at most 2x2 as one matrix product.

    The map's ``P`` positions and the output's ``O`` are few, so the layer is the linear map
    ``(B, P*C) -> (B, O*C_out)`` whose ``(o, p)`` block is the tap through which output ``o`` sees
    input ``p`` (taps that see only padding never enter). The weight's gradient is the product's
    gradient folded back onto the taps.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
        batch, channels, height, width = x.shape
        out_channels = weight.shape[0]
        out_h, out_w, taps = _taps(height, width, stride)
        x_flat = x.permute(0, 2, 3, 1).reshape(batch, height * width * channels)  # (B, P*C), position-major
        dense = weight.new_zeros(out_h * out_w, out_channels, height * width, channels)
        for o, p, ky, kx in taps:
            dense[o, :, p, :] = weight[:, :, ky, kx]
        dense = dense.view(out_h * out_w * out_channels, height * width * channels)  # (O*C_out, P*C)
        ctx.save_for_backward(x_flat, dense, weight)
        ctx.shape = (batch, channels, height, width, out_channels, out_h, out_w, taps)
        out = x_flat @ dense.t()  # (B, O*C_out)
        return out.view(batch, out_h, out_w, out_channels).permute(0, 3, 1, 2)  # channels_last memory

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x_flat, dense, weight = ctx.saved_tensors
        batch, channels, height, width, out_channels, out_h, out_w, taps = ctx.shape
        grad_flat = grad_out.permute(0, 2, 3, 1).reshape(batch, out_h * out_w * out_channels)
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = (grad_flat @ dense).view(batch, height, width, channels).permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            grad_dense = (grad_flat.t() @ x_flat).view(out_h * out_w, out_channels, height * width, channels)
            grad_weight = torch.zeros_like(weight)  # the weight's own layout: no copy when accumulated
            for o, p, ky, kx in taps:
                grad_weight[:, :, ky, kx] += grad_dense[o, :, p, :]
        return grad_x, grad_weight, None


class SmallMapConv2d(nn.Conv2d):
    """A 3x3, padding-1 convolution computed as one matrix product on the tiny maps of a ResNet18
    fed 16x16 images.

    On maps of at most 2x2 (``layer3`` runs on 2x2 maps, ``layer4`` on 1x1) a 3x3 convolution is a
    small dense linear map: each output position sees each input position through one tap, and
    the taps that would see only padding never enter (``_SmallMapConv``). On larger maps, or with
    groups or dilation, it is :class:`torch.nn.Conv2d`. The same layer either way: the same weights,
    ``state_dict``, outputs and gradients (the taps that see no data get a zero gradient, as in
    ``Conv2d``; weight decay still reaches them). It exists for speed: oneDNN computes every tap of
    the padded map (2.25x the products on a 2x2 map, 9x on a 1x1 one); on this project's 2-core
    AVX-512 machine one 128-image training step of the model takes 166 ms, against 282 ms with
    plain ``Conv2d`` (``qmae bench --only classifier``, docs/benchmarks.md). ``tests/test_classifier.py`` checks
    outputs and gradients against ``Conv2d``.
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        small = input.dim() == 4 and input.shape[-2] * input.shape[-1] <= 4
        three_by_three = self.kernel_size == (3, 3) and self.padding == (1, 1) and self.stride[0] == self.stride[1]
        plain = self.groups != 1 or self.dilation != (1, 1) or self.padding_mode != "zeros"
        if not small or not three_by_three or plain:
            return super()._conv_forward(input, weight, bias)
        out = _SmallMapConv.apply(input, weight, self.stride[0])
        return out if bias is None else out + bias.view(1, -1, 1, 1)


def _small_map_convs(model: nn.Module) -> nn.Module:
    """Every 3x3, padding-1 convolution of ``model`` as a :class:`SmallMapConv2d` with the same
    parameters (in place)."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.Conv2d and child.kernel_size == (3, 3) and child.padding == (1, 1):
                conv = SmallMapConv2d(
                    child.in_channels,
                    child.out_channels,
                    3,
                    stride=(child.stride[0], child.stride[1]),
                    padding=1,
                    bias=child.bias is not None,
                )
                conv.weight = child.weight  # the same Parameter: its initialisation and state_dict key
                conv.bias = child.bias
                setattr(parent, name, conv)
    return model


def resnet18_16x16(num_classes: int = 10) -> nn.Module:
    """ResNet18 with a 1-channel stem and no first max-pool (16x16 inputs), as in the paper.

    Its 3x3 convolutions are :class:`SmallMapConv2d`: the same layers, computed faster where
    ``layer3`` and ``layer4`` run on 2x2 and 1x1 maps.
    """
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.maxpool = nn.Identity()
    return _small_map_convs(model)


def classifier_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qmae-qiskit" / "classifier"


def _normalize(images: torch.Tensor) -> torch.Tensor:
    return ((images - 0.1307) / 0.3081).unsqueeze(1)  # MNIST mean/std; (B, 1, H, W)


def _shift(images: torch.Tensor, pixels: int, gen: torch.Generator) -> torch.Tensor:
    if pixels == 0:
        return images
    padded = F.pad(images, (pixels,) * 4)
    size = images.shape[-1]
    dy, dx = torch.randint(0, 2 * pixels + 1, (2,), generator=gen).tolist()
    return padded[..., dy : dy + size, dx : dx + size]


def labels_of(data: ImageSet) -> torch.Tensor:
    """The labels of a labelled set.

    Raises:
        ValueError: an unlabelled set (a folder without class sub-folders): there is nothing to classify.
    """
    if data.labels is None:
        raise ValueError(f"{data.source} is unlabelled (no class sub-folders): there is no classifier to train")
    return data.labels


def num_classes(train: ImageSet) -> int:
    """Classes of a labelled set (labels 0..K-1).

    Raises:
        ValueError: an unlabelled set.
    """
    return int(labels_of(train).max()) + 1


def train_classifier(
    train: ImageSet, options: ClassifierOptions = ClassifierOptions(), *, progress: bool = True
) -> nn.Module:
    """Train the classifier on ``train`` (images in [0, 1]).

    Raises:
        ValueError: non-positive epochs / batch size / learning rate, or an unlabelled set.
    """
    if options.epochs < 1 or options.batch_size < 1 or options.lr <= 0:
        raise ValueError(f"classifier epochs, batch size and lr must be positive, got {options}")
    torch.manual_seed(options.seed)
    gen = torch.Generator().manual_seed(options.seed)
    model = resnet18_16x16(num_classes(train)).to(memory_format=torch.channels_last)  # oneDNN's fast layout
    labels = labels_of(train)
    steps = options.epochs * -(-len(train.images) // options.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=options.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=options.lr, total_steps=steps)
    bar = tqdm(total=steps, disable=not progress, desc="classifier", unit="step", dynamic_ncols=True)
    model.train()
    started, done = time.perf_counter(), 0
    for _ in range(options.epochs):
        order = torch.randperm(len(train.images), generator=gen)
        for start in range(0, len(order), options.batch_size):
            idx = order[start : start + options.batch_size]
            x = _normalize(_shift(train.images[idx], options.shift, gen)).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            done += 1
            if done == ESTIMATE_AFTER and not progress:  # no bar to read the time left from: say it once
                left = (time.perf_counter() - started) / done * (steps - done)
                log.warning("classifier: about %.0f minute(s) left (%d of %d steps done)", left / 60, done, steps)
    bar.close()
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1000) -> torch.Tensor:
    """Predicted labels for ``(B, 16, 16)`` images in [0, 1]."""
    model.eval()
    return torch.cat(
        [model(_normalize(images[i : i + batch_size].float())).argmax(1) for i in range(0, len(images), batch_size)]
    )


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Accuracy (a fraction) and its standard error."""
    correct = (predict(model, images) == labels).double()
    mean = correct.mean().item()
    return mean, (mean * (1 - mean) / max(len(correct), 1)) ** 0.5


def cached_classifier(
    train: ImageSet, options: ClassifierOptions = ClassifierOptions(), *, progress: bool = True, force: bool = False
) -> tuple[nn.Module, Path]:
    """The classifier for this training data and these options: from the cache, or trained now
    (cached by the data's content, so each dataset has its own).

    Returns:
        ``(model, path of the cached weights)``.
    """
    classes = num_classes(train)
    digest = hashlib.sha256(train.images.numpy().tobytes() + labels_of(train).numpy().tobytes()).hexdigest()[:16]
    key = hashlib.sha256(
        json.dumps({"data": digest, "options": asdict(options), "v": 1}, sort_keys=True).encode()
    ).hexdigest()[:16]
    path = classifier_cache_dir() / f"resnet18-{train.images.shape[-1]}px-{key}.pt"
    model = resnet18_16x16(classes)
    if path.is_file() and not force:
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval(), path
        except Exception:  # a partial or stale file: train again
            pass
    log.warning(
        "training the ResNet18 classifier behind every accuracy on %d images, %d epochs (not cached yet: %s); "
        "qmae classifier train does it ahead, --no-accuracy skips it",
        len(train.images),
        options.epochs,
        path.name,
    )
    start = time.perf_counter()
    model = train_classifier(train, options, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(model.state_dict(), fh))
    atomic_write(
        path.with_suffix(".json"),
        lambda fh: fh.write(
            json.dumps(
                {
                    "options": asdict(options),
                    "train_images": len(train.images),
                    "source": train.source,
                    "seconds": time.perf_counter() - start,
                }
            ).encode()
        ),
    )
    return model, path
