"""``qmae bench``: speed of every training path, measured in one run on one machine.

Prints a table and writes JSON (``--json``). What it measures (forward + backward = loss and the
gradients of the weights and the token):

- ``exact``: the exact engine at batch 1, 32, 128, 512 (n = 8, 16x16 images);
- ``roofline``: the complex products one step cannot avoid (the 256x256 unitary applied to the
  batch's 2B states, forward and backward) and the engine's efficiency against it at batch 256;
- ``epoch``: wall time of one epoch over 24,345 images at batch 256 and at the default batch;
- ``estimator``: ``EstimatorQNN`` on Aer, forward and forward + backward at n = 8 with the exact
  Aer state-vector gradient; at n = 4 also qiskit-machine-learning's parameter shift through
  ``TorchConnector`` (at n = 8 only with ``--estimator-n8-backward``: ~15 min per image);
- ``paper``: the paper's own stack (PennyLane ``default.qubit``, 18 qubits, amplitude embedding,
  SWAP test, backprop), when PennyLane is installed (``pip install .[bench]``);
- ``scaling``: time per image and peak memory of exact-engine training for n = 4..12 (each n in its
  own process so that peak RSS is that n's alone);
- ``evaluation``: fidelity + reconstruction of 10,000 test images;
- ``classifier``: the ResNet18 behind every accuracy, trained with its default options on the
  training split (``--data-dir``: the 24,345 images at hand; else the embedded sample), its wall
  time and clean test accuracy, and one training step at its batch with and without
  :class:`~qmae_qiskit.classifier.SmallMapConv2d` (torchvision's plain layers), timed in the same run.

``--quick`` uses tiny repeat counts and n = 4..8 so that CI can check the output's form in seconds.
``--device cuda`` runs the exact-engine sections (exact, roofline, epoch, scaling, memory,
evaluation) on the GPU, adds batches 2048 and 8192, reports GPU memory
(``torch.cuda.max_memory_allocated``) beside RSS, and leaves out the estimator engine (an Aer CPU
path, measured in a CPU run); the paper's stack still runs, on the CPU, for the ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..model import QMAE

CPU = torch.device("cpu")

EPOCH_IMAGES = 24_345


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work: CUDA calls return before the kernels finish."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], Any], *, repeat: int, warmup: int = 2, device: torch.device = CPU) -> float:
    """Median seconds of ``fn`` over ``repeat`` calls (the GPU's work included)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("qmae bench: --device cuda but torch sees no CUDA GPU here; use --device cpu")
    return device


def _images(count: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    from ..data import load_mnist, resize

    images = load_mnist("train", limit=max(count, 10)).images[:count]
    if len(images) < count:  # more than the embedded sample: tile it
        images = images.repeat(math.ceil(count / len(images)), 1, 1)[:count]
    return images if size == 16 else resize(images, size)


def _train_step(
    model: QMAE, images: torch.Tensor, mask: torch.Tensor, opt: torch.optim.Optimizer
) -> Callable[[], None]:
    def step() -> None:
        loss = model.loss(images, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _setup(batch: int, device: torch.device, **model_options: Any) -> tuple[QMAE, torch.Tensor, torch.Tensor]:
    """A model, ``batch`` training images and their masks, all on ``device``."""
    model = QMAE(seed=0, **model_options).to(device)
    size = model.image_size
    images = _images(batch, size=size).to(device)
    mask = model.random_mask(batch, generator=torch.Generator().manual_seed(0)).to(device)
    return model, images, mask


def bench_exact(batches: list[int], repeat: int, device: torch.device = CPU) -> list[dict[str, float]]:
    rows = []
    for batch in batches:
        model, images, mask = _setup(batch, device)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        seconds = _time(_train_step(model, images, mask, opt), repeat=repeat, device=device)
        rows.append(
            {"batch": batch, "step_s": seconds, "s_per_image": seconds / batch, "images_per_s": batch / seconds}
        )
    return rows


def bench_roofline(batch: int, repeat: int, device: torch.device = CPU) -> dict[str, float]:
    """The unavoidable products: U (256x256, complex64) on 2B states, forward and backward."""
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(256, 256, dtype=torch.complex64, generator=gen).to(device).requires_grad_()
    states = torch.randn(2 * batch, 256, dtype=torch.complex64, generator=gen).to(device).requires_grad_()

    def products() -> None:
        (states @ u.T).real.sum().backward()

    model, images, mask = _setup(batch, device)
    train_step = _train_step(model, images, mask, torch.optim.Adam(model.parameters(), lr=0.01))
    # Interleaved rounds, so that both see the same machine: on a shared 2-core VM the speed of
    # either alone drifts by +-20 % within a minute, which a ratio of two separate timings inherits.
    rounds: list[tuple[float, float]] = []
    for _ in range(max(3, repeat // 2)):
        rounds.append((_time(products, repeat=5, device=device), _time(train_step, repeat=5, device=device)))
    seconds = sorted(p for p, _ in rounds)[len(rounds) // 2]
    step = sorted(s for _, s in rounds)[len(rounds) // 2]
    efficiency = sorted(p / s for p, s in rounds)[len(rounds) // 2]  # per round: the drift cancels
    return {
        "batch": batch,
        "products_s": seconds,
        "step_s": step,
        "efficiency": efficiency,
        "rounds": len(rounds),
        "products_epoch_s": seconds * EPOCH_IMAGES / batch,
        "step_epoch_s": step * EPOCH_IMAGES / batch,
    }


def bench_epoch(batch: int, data_dir: str | None, device: torch.device = CPU) -> dict[str, Any]:
    """One real epoch through :func:`qmae_qiskit.training.train` (no evaluation, no progress bar)."""
    import tempfile

    from ..training import train

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = train(
            out=out, data_dir=data_dir, epochs=1, batch_size=batch, eval_limit=0, progress=False, device=str(device)
        )
        total = time.perf_counter() - start
    # the loop's own time (each step's images / its images/s), without data loading and checkpoints
    steps = len(result.history)
    loop = sum(batch / h["images_per_s"] for h in result.history if h["images_per_s"] > 0)
    return {
        "batch": batch,
        "steps": steps,
        "train_call_s": total,
        "loop_s": loop,
        "data": data_dir or "embedded sample",
        "epoch_24345_s": loop * EPOCH_IMAGES / (steps * batch),
    }


def bench_estimator(count: int, *, n8_backward: bool) -> dict[str, Any]:
    """EstimatorQNN forward; backward with exact Aer state-vector gradients (default) and with
    qiskit-machine-learning's parameter shift (the naive path; at n = 8 only on request)."""
    out: dict[str, Any] = {}
    model = QMAE(seed=0, engine="estimator")
    images = _images(count)
    mask = model.random_mask(count, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out["n8_forward_s_per_image"] = _time(lambda: model.fidelity(images, mask), repeat=1, warmup=0) / count
    out["n8_fwd_bwd_s_per_image"] = _time(lambda: model.loss(images, mask).backward(), repeat=1, warmup=0) / count
    small = QMAE(image_size=4, patch_size=(2, 2), seed=0, engine="estimator")
    x = _images(count, size=4)
    m = small.random_mask(count, generator=torch.Generator().manual_seed(0))
    out["n4_fwd_bwd_s_per_image"] = _time(lambda: small.loss(x, m).backward(), repeat=1, warmup=0) / count
    small.set_engine("estimator", gradient="param_shift")
    out["n4_fwd_bwd_param_shift_s_per_image"] = _time(lambda: small.loss(x, m).backward(), repeat=1, warmup=0) / count
    if n8_backward:
        model.set_engine("estimator", gradient="param_shift")
        out["n8_fwd_bwd_param_shift_s_per_image"] = _time(
            lambda: model.loss(images[:1], mask[:1]).backward(), repeat=1, warmup=0
        )
    return out


def paper_stack_step(images: torch.Tensor, masked: torch.Tensor, theta: torch.Tensor) -> Callable[[], None]:
    """The paper's stack: PennyLane ``default.qubit``, 18 wires, one image per call, backprop."""
    import pennylane as qml

    from ..circuits.ansatz import all_pairs

    data, fresh, ref, anc = list(range(8)), 8, list(range(9, 17)), 17
    dev = qml.device("default.qubit", wires=18)

    def block(p, a, b):
        for q, o in ((a, 0), (b, 3)):
            qml.RZ(p[o], wires=q), qml.RY(p[o + 1], wires=q), qml.RZ(p[o + 2], wires=q)
        qml.CNOT(wires=[b, a]), qml.RZ(p[6], wires=a), qml.RY(p[7], wires=b)
        qml.CNOT(wires=[a, b]), qml.RY(p[8], wires=b), qml.CNOT(wires=[b, a])
        for q, o in ((a, 9), (b, 12)):
            qml.RZ(p[o], wires=q), qml.RY(p[o + 1], wires=q), qml.RZ(p[o + 2], wires=q)

    def encoder(w):
        for k, (i, j) in enumerate(all_pairs(8)):
            block(w[15 * k : 15 * k + 15], 7 - i, 7 - j)  # PennyLane wire 0 is the most significant

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def swap_test(x, y, w):
        qml.AmplitudeEmbedding(x, wires=data, normalize=True)
        qml.AmplitudeEmbedding(y, wires=ref, normalize=True)
        encoder(w)
        qml.SWAP(wires=[0, fresh])  # the trash qubit (Qiskit qubit 7) swapped with a fresh |0>
        qml.adjoint(encoder)(w)
        qml.Hadamard(wires=anc)
        for a, b in zip(data, ref):
            qml.CSWAP(wires=[anc, a, b])
        qml.Hadamard(wires=anc)
        return qml.expval(qml.PauliZ(anc))

    def step() -> None:
        for x, y in zip(masked, images):
            (1 - swap_test(x.flatten(), y.flatten(), theta)).backward()

    return step


def bench_paper(count: int) -> dict[str, Any]:
    try:
        import pennylane  # noqa: F401
    except ImportError:
        return {"skipped": "PennyLane is not installed: pip install '.[bench]'"}
    model = QMAE(seed=0)
    images = _images(count)
    mask = model.random_mask(count, generator=torch.Generator().manual_seed(0))
    masked = model.fill(images, mask).detach().double().requires_grad_()
    theta = model.theta.detach().double().requires_grad_()
    # one image first (PennyLane traces and caches), then the timed ones
    seconds = _time(paper_stack_step(images.double(), masked, theta), repeat=1, warmup=1)
    import pennylane

    return {"s_per_image": seconds / count, "images": count, "pennylane": pennylane.__version__}


def _peak_rss_mib() -> float:
    """This process's peak resident memory. ``VmHWM`` (Linux) rather than ``ru_maxrss``, which a
    forked child inherits from its parent's high-water mark."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)


def _scaling_point(n: int, batch: int, repeat: int, device: torch.device = CPU) -> dict[str, Any]:
    size = 2 ** (n // 2)
    if n % 2:
        raise ValueError("n must be even (square images)")
    model, images, mask = _setup(batch, device, image_size=size, patch_size=(size // 2, size // 2))
    step = _train_step(model, images, mask, torch.optim.Adam(model.parameters(), lr=0.01))
    seconds = _time(step, repeat=repeat, warmup=1, device=device)
    row = {
        "n": n,
        "image": f"{size}x{size}",
        "batch": batch,
        "s_per_image": seconds / batch,
        "peak_rss_mib": _peak_rss_mib(),
    }
    if device.type == "cuda":
        row["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def bench_scaling(ns: list[int], batch: int, repeat: int, device: torch.device = CPU) -> list[dict[str, Any]]:
    rows = []
    for n in ns:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "qmae_qiskit.studies.bench",
                "--scaling-point",
                str(n),
                "--batch",
                str(batch),
                "--repeat",
                str(repeat),
                "--device",
                str(device),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            rows.append(
                {
                    "n": n,
                    "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}",
                }
            )
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def bench_evaluation(count: int, device: torch.device = CPU) -> dict[str, Any]:
    model, images, mask = _setup(count, device)

    def run() -> None:
        with torch.no_grad():
            model.fidelity(images, mask)
            model.reconstruct(images, mask)

    return {"images": count, "seconds": _time(run, repeat=3, warmup=1, device=device)}


def bench_classifier(data_dir: str | None, *, quick: bool) -> dict[str, Any]:
    """``qmae classifier train``'s work, timed: the default :class:`~qmae_qiskit.classifier.ClassifierOptions`
    on the whole training split (quick: 512 images, one epoch), then the clean test accuracy."""
    import torch.nn.functional as F

    from ..classifier import ClassifierOptions, SmallMapConv2d, accuracy, labels_of, resnet18_16x16, train_classifier
    from ..datasets import load_dataset

    train_set = load_dataset("mnist", "train", root=data_dir)
    test_set = load_dataset("mnist", "test", root=data_dir)
    options = ClassifierOptions()
    if quick:
        train_set = train_set._replace(images=train_set.images[:512], labels=labels_of(train_set)[:512])
        test_set = test_set._replace(images=test_set.images[:500], labels=labels_of(test_set)[:500])
        options = ClassifierOptions(epochs=1, batch_size=64)
    batch = min(options.batch_size, len(train_set.images))
    x = train_set.images[:batch].unsqueeze(1).contiguous(memory_format=torch.channels_last)
    y = labels_of(train_set)[:batch]

    def step_time(plain: bool) -> float:
        model = resnet18_16x16(10)
        if plain:  # torchvision's Conv2d in every 3x3 layer
            for parent in list(model.modules()):
                for name, child in parent.named_children():
                    if isinstance(child, SmallMapConv2d):
                        conv = torch.nn.Conv2d(
                            child.in_channels,
                            child.out_channels,
                            3,
                            stride=(child.stride[0], child.stride[1]),
                            padding=1,
                            bias=False,
                        )
                        conv.weight = child.weight
                        setattr(parent, name, conv)
        model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step() -> None:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        return _time(step, repeat=2 if quick else 5, warmup=1)

    plain_s, ours_s = step_time(True), step_time(False)
    start = time.perf_counter()
    model = train_classifier(train_set, options, progress=False)
    seconds = time.perf_counter() - start
    acc, err = accuracy(model, test_set.images, labels_of(test_set))
    return {
        "train_images": len(train_set.images),
        "test_images": len(test_set.images),
        "data": data_dir or "embedded sample",
        "epochs": options.epochs,
        "batch": options.batch_size,
        "train_s": seconds,
        "clean_accuracy": acc,
        "clean_accuracy_se": err,
        "step_s": ours_s,
        "step_plain_conv_s": plain_s,
    }


def run(*, quick: bool, data_dir: str | None, estimator_n8_backward: bool, device: str = "cpu") -> dict[str, Any]:
    dev = _device(device)
    gpu = dev.type == "cuda"
    repeat = 3 if quick else 20
    result: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "device": str(dev),
        },
        "versions": {},
        "quick": quick,
    }
    if gpu:
        result["machine"]["gpu"] = torch.cuda.get_device_name(dev)
    from ..runs import versions

    result["versions"] = versions()
    result["exact"] = bench_exact([1, 32, 128, 512] + ([2048, 8192] if gpu else []), repeat, dev)
    result["roofline"] = bench_roofline(256, repeat, dev)
    result["epoch"] = [bench_epoch(256, None if quick else data_dir, dev)] + (
        [] if quick else [bench_epoch(128, data_dir, dev)]
    )
    if gpu:  # Aer runs on the CPU whatever --device says
        result["estimator"] = {"skipped": "the estimator engine runs on Aer (CPU): see a --device cpu run"}
    else:
        result["estimator"] = bench_estimator(1 if quick else 2, n8_backward=estimator_n8_backward)
    result["paper"] = bench_paper(1 if quick else 2)
    ns = [4, 6, 8] if quick else [4, 6, 8, 10, 12]  # QMAE's image_size stops at 64x64 (n = 12)
    result["scaling"] = bench_scaling(ns, 8 if quick else 64, 1 if quick else 3, dev)
    result["memory_batch512"] = bench_scaling([8], 512, 1, dev)[0]
    result["evaluation"] = bench_evaluation(500 if quick else 10_000, dev)
    result["classifier"] = bench_classifier(data_dir, quick=quick)
    exact_1 = result["exact"][0]["s_per_image"]
    best = min(r["s_per_image"] for r in result["exact"])
    result["speedup"] = {}
    est = result["estimator"]
    if "skipped" not in est:
        result["speedup"]["exact_best_vs_estimator_n8_forward"] = est["n8_forward_s_per_image"] / best
        result["speedup"]["exact_best_vs_estimator_n8_fwd_bwd"] = est["n8_fwd_bwd_s_per_image"] / best
        result["speedup"]["estimator_aer_gradient_vs_param_shift_n4"] = (
            est["n4_fwd_bwd_param_shift_s_per_image"] / est["n4_fwd_bwd_s_per_image"]
        )
    if "n8_fwd_bwd_param_shift_s_per_image" in est:
        result["speedup"]["estimator_aer_gradient_vs_param_shift_n8"] = (
            est["n8_fwd_bwd_param_shift_s_per_image"] / est["n8_fwd_bwd_s_per_image"]
        )
    if "s_per_image" in result["paper"]:
        result["speedup"]["exact_best_vs_paper"] = result["paper"]["s_per_image"] / best
        result["speedup"]["exact_batch1_vs_paper"] = result["paper"]["s_per_image"] / exact_1
    return result


def table(result: dict[str, Any]) -> str:
    lines = [
        f"exact engine on {result['machine'].get('device', 'cpu')}, n = 8, forward + backward + Adam:",
        f"  {'batch':>6} {'step ms':>9} {'us/image':>9} {'images/s':>10}",
    ]
    for r in result["exact"]:
        lines.append(
            f"  {r['batch']:>6} {r['step_s'] * 1e3:>9.2f} {r['s_per_image'] * 1e6:>9.1f} {r['images_per_s']:>10.0f}"
        )
    rf = result["roofline"]
    lines.append(
        f"roofline at batch {rf['batch']}: products {rf['products_s'] * 1e3:.2f} ms, step {rf['step_s'] * 1e3:.2f} ms,"
        f" efficiency {rf['efficiency']:.0%}"
        f" (epoch: products {rf['products_epoch_s']:.2f} s, engine {rf['step_epoch_s']:.2f} s)"
    )
    for e in result["epoch"]:
        lines.append(
            f"epoch over 24,345 images at batch {e['batch']}: {e['epoch_24345_s']:.2f} s (loop; {e['data']}; train() "
            f"call {e['train_call_s']:.1f} s)"
        )
    est = result["estimator"]
    if "skipped" in est:
        lines.append(f"estimator engine: {est['skipped']}")
    else:
        lines.append(
            f"estimator engine: n=8 forward {est['n8_forward_s_per_image']:.2f} s/image, forward+backward (Aer "
            f"state-vector gradient) {est['n8_fwd_bwd_s_per_image']:.2f} s/image; "
            f"n=4 forward+backward {est['n4_fwd_bwd_s_per_image']:.2f} s/image (parameter shift: "
            f"{est['n4_fwd_bwd_param_shift_s_per_image']:.2f})"
            + (
                f"; n=8 parameter shift {est['n8_fwd_bwd_param_shift_s_per_image']:.0f} s/image"
                if "n8_fwd_bwd_param_shift_s_per_image" in est
                else ""
            )
        )
    paper = result["paper"]
    lines.append(
        f"paper stack (PennyLane): {paper['s_per_image']:.2f} s/image"
        if "s_per_image" in paper
        else f"paper stack: {paper['skipped']}"
    )
    lines.append("scaling (exact, training step):")
    for r in result["scaling"]:
        gpu = f", GPU {r['peak_gpu_mib']:.0f} MiB" if "peak_gpu_mib" in r else ""
        lines.append(
            f"  n={r['n']:>2} error: {r['error']}"
            if "error" in r
            else f"  n={r['n']:>2} {r['image']:>6} {r['s_per_image'] * 1e3:>9.3f} ms/image  peak RSS "
            f"{r['peak_rss_mib']:.0f} MiB{gpu}"
        )
    mem = result["memory_batch512"]
    gpu = f"; GPU {mem['peak_gpu_mib']:.0f} MiB allocated" if "peak_gpu_mib" in mem else ""
    lines.append(
        f"peak memory, training n=8 at batch 512: {mem.get('peak_rss_mib', float('nan')):.0f} MiB (the process, torch "
        f"included){gpu}"
    )
    ev = result["evaluation"]
    lines.append(f"evaluation of {ev['images']} images (fidelity + reconstruction): {ev['seconds']:.2f} s")
    cl = result.get("classifier")
    if cl:
        lines.append(
            f"classifier (ResNet18, qmae classifier train): {cl['train_images']:,} images ({cl['data']}), "
            f"{cl['epochs']} epochs at batch {cl['batch']}: {cl['train_s']:.0f} s ({cl['train_s'] / 60:.1f} min), "
            f"clean accuracy {100 * cl['clean_accuracy']:.2f} % on {cl['test_images']:,} test images; one step "
            f"{cl['step_s'] * 1e3:.0f} ms ({cl['step_plain_conv_s'] * 1e3:.0f} ms with torchvision's plain 3x3 "
            f"layers: {cl['step_plain_conv_s'] / cl['step_s']:.1f}x)"
        )
    lines.append("speed-ups: " + ", ".join(f"{k} {v:,.0f}x" for k, v in result["speedup"].items()))
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str) -> None:
    """Two panels: seconds per image of every path (log scale), and exact-engine scaling with n."""
    from ..figures import new_figure, save_figure

    fig, (left, right) = new_figure(1, 2, figsize=(10, 3.6))
    bars = {f"exact b={r['batch']}": r["s_per_image"] for r in result["exact"]}
    est = result["estimator"]
    if "skipped" not in est:
        bars["estimator n=8 fwd"] = est["n8_forward_s_per_image"]
        bars["estimator n=8 fwd+bwd"] = est["n8_fwd_bwd_s_per_image"]
    if "n8_fwd_bwd_param_shift_s_per_image" in est:
        bars["estimator n=8 param shift"] = est["n8_fwd_bwd_param_shift_s_per_image"]
    if "s_per_image" in result["paper"]:
        bars["paper stack fwd+bwd"] = result["paper"]["s_per_image"]
    left.barh(
        list(bars),
        list(bars.values()),
        color=["C0"] * len(result["exact"]) + ["C1"] * (len(bars) - len(result["exact"])),
    )
    left.set_xscale("log")
    left.set_xlabel("seconds per image (log)")
    left.set_title("forward + backward per image, n = 8")
    rows = [r for r in result["scaling"] if "error" not in r]
    right.semilogy([r["n"] for r in rows], [r["s_per_image"] for r in rows], "o-", label="s / image")
    right.set_xlabel("data qubits n")
    right.set_ylabel("seconds per image (training step)")
    twin = right.twinx()
    memory = "peak_gpu_mib" if all("peak_gpu_mib" in r for r in rows) else "peak_rss_mib"
    twin.plot([r["n"] for r in rows], [r[memory] for r in rows], "s--", color="C2")
    twin.set_ylabel("peak GPU memory allocated (MiB)" if memory == "peak_gpu_mib" else "peak RSS of the process (MiB)")
    twin.set_ylim(0, 1.3 * max(r[memory] for r in rows))
    right.set_title(f"exact engine scaling ({result['machine'].get('device', 'cpu')})")
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qmae bench", description="Benchmark every training path in one run.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs (CI)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--data-dir", help="MNIST for the epoch timing (default: the embedded sample)")
    parser.add_argument("--device", default="cpu", help="torch device of the exact engine: cpu (default) or cuda")
    parser.add_argument(
        "--estimator-n8-backward",
        action="store_true",
        help="also time one n=8 parameter-shift backward through TorchConnector (~15 min)",
    )
    parser.add_argument("--scaling-point", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scaling_point is not None:
        print(json.dumps(_scaling_point(args.scaling_point, args.batch, args.repeat, _device(args.device))))
        return 0
    result = run(
        quick=args.quick, data_dir=args.data_dir, estimator_n8_backward=args.estimator_n8_backward, device=args.device
    )
    print(table(result))
    if args.json:
        from ..checkpoint import write_json

        write_json(args.json, result)
        plot(result, str(Path(args.json).with_suffix(".png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
