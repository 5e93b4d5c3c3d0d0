"""``qmae bench``: speed of every training path, measured in one run on one machine.

Prints a table and writes JSON (``--json``). What it measures (forward + backward = loss and the
gradients of the weights and the token):

- ``exact``: the exact engine at batch 1, 32, 128, 512 (n = 8, 16x16 images);
- ``roofline``: the complex products one step cannot avoid (the 256x256 unitary applied to the
  batch's 2B states, forward and backward) and the engine's efficiency against it at batch 256;
- ``epoch``: wall time of one epoch over 24,345 images at batch 256 and at the default batch;
- ``estimator``: ``EstimatorQNN`` on Aer with the Aer adjoint gradient, forward and forward +
  backward per image at n = 8 and batch 32 and 256, next to the exact engine at the same batch in
  the same run, with the largest difference of the loss and gradients; at n = 4 also
  qiskit-machine-learning's parameter shift through ``TorchConnector``; one forward under
  ``fake_fez``'s noise model (what a noisy training step would cost);
- ``estimator_epoch``: one epoch of ``qmae train --engine estimator`` on the training images at
  hand next to the exact engine's run with the same seed: wall times and held-out fidelities;
- ``paper``: the paper's own stack (PennyLane ``default.qubit``, 18 qubits, amplitude embedding,
  SWAP test, backprop), when PennyLane is installed (``pip install .[bench]``);
- ``scaling``: time per image and peak memory of exact-engine training for n = 4..12 (each n in its
  own process so that peak RSS is that n's alone);
- ``evaluation``: fidelity + reconstruction of 10,000 test images;
- ``classifier``: the ResNet18 behind every accuracy, trained with its default options on the
  training split (``--data-dir``: the 24,345 images at hand; else the embedded sample), its wall
  time and clean test accuracy, and one training step at its batch with and without
  :class:`~qmae_qiskit.classifier.SmallMapConv2d` (torchvision's plain layers), timed in the same run
  (issue 24's target: <= 5 minutes with >= 99 %).

``--quick`` uses tiny repeat counts and n = 4..8 so that CI can check the output's form in seconds.
``--only SECTION`` runs one section.
``--device cuda`` runs the exact-engine sections (exact, roofline, epoch, scaling, memory,
evaluation) on the GPU, adds batches 2048 and 8192, reports GPU memory
(``torch.cuda.max_memory_allocated``) beside RSS, and leaves out the estimator engine (an Aer CPU
path, measured in a CPU run); the paper's stack still runs, on the CPU, for the ratio.
"""

from __future__ import annotations

import json
import math
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
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


def bench_estimator(batches: list[int], *, n4_images: int, noise: bool) -> dict[str, Any]:
    """The estimator engine (``EstimatorQNN`` on Aer, the Aer adjoint gradient) next to the exact engine
    in the same run, at n = 8: forward, and forward + backward (the loss and the gradients of the
    weights and the token), per image at each batch, one call each after a warm-up call; the
    largest difference of its loss and gradients from the exact engine's in double precision. At
    n = 4 also qiskit-machine-learning's parameter shift through ``TorchConnector``. With ``noise``:
    one forward of the n = 8 circuit transpiled for ``fake_fez`` with its noise model (Aer's
    density matrix), the cost a noisy training step would start from."""
    est = QMAE(seed=0, engine="estimator")
    ref = QMAE(seed=0)  # the same weights and token (same seed)
    images = _images(max(batches))
    mask = est.random_mask(len(images), generator=torch.Generator().manual_seed(0))

    def step(model: QMAE, x: torch.Tensor, m: torch.Tensor) -> list[torch.Tensor]:
        model.zero_grad()
        loss = model.loss(x, m)
        loss.backward()
        assert model.token is not None and model.theta.grad is not None and model.token.grad is not None
        return [loss.detach().double(), model.theta.grad.double(), model.token.grad.double()]

    def row(batch: int) -> dict[str, Any]:
        x, m = images[:batch], mask[:batch]
        with torch.no_grad():
            forward = _time(lambda: est.fidelity(x, m), repeat=1, warmup=1) / batch
        both = _time(lambda: step(est, x, m), repeat=1, warmup=1) / batch
        ref.set_engine("exact")  # its training default (complex64)
        exact = _time(lambda: step(ref, x, m), repeat=5, warmup=2) / batch
        ref.set_engine("exact", dtype=torch.complex128)
        difference = max(float((a - b).abs().max()) for a, b in zip(step(est, x, m), step(ref, x, m)))
        return {
            "batch": batch,
            "forward_s_per_image": forward,
            "fwd_bwd_s_per_image": both,
            "exact_fwd_bwd_s_per_image": exact,
            "ratio": both / exact,
            "max_abs_difference": difference,
        }

    out: dict[str, Any] = {"n8": [row(batch) for batch in batches]}
    small = QMAE(image_size=4, patch_size=(2, 2), seed=0, engine="estimator")
    x4 = _images(n4_images, size=4)
    m4 = small.random_mask(n4_images, generator=torch.Generator().manual_seed(0))
    out["n4_fwd_bwd_s_per_image"] = _time(lambda: step(small, x4, m4), repeat=1, warmup=1) / n4_images
    small.set_engine("estimator", gradient="param_shift")
    out["n4_fwd_bwd_param_shift_s_per_image"] = _time(lambda: step(small, x4, m4), repeat=1, warmup=0) / n4_images
    if noise:
        out["noisy"] = _noisy_forward(est, images[:1], mask[:1])
    return out


def bench_estimator_epoch(data_dir: str | None, *, quick: bool) -> dict[str, Any]:
    """One epoch of ``qmae train --engine estimator`` (the default recipe, seed 0) on the training
    images at hand, next to the exact engine's run with the same seed: wall time of each
    :func:`~qmae_qiskit.training.train` call and the held-out fidelity each run scores at its end
    (with its own engine). ``quick``: 64 images of the embedded sample, 32 held out."""
    import tempfile

    from ..training import train

    options: dict[str, Any] = {"epochs": 1, "seed": 0, "progress": False}
    options.update({"limit": 64, "eval_limit": 32} if quick else {"data_dir": data_dir})
    out: dict[str, Any] = {"data": "embedded sample" if quick or not data_dir else data_dir}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ("estimator", "exact"):
            start = time.perf_counter()
            result = train(out=f"{tmp}/{engine}", engine=engine, **options)
            out[engine] = {
                "wall_s": time.perf_counter() - start,
                "steps": len(result.history),
                "heldout_fidelity": result.eval_fidelity,
            }
            assert result.run_dir is not None
            out["train_images"] = json.loads((result.run_dir / "config.json").read_text())["train_images"]
    out["heldout_difference"] = abs(out["estimator"]["heldout_fidelity"] - out["exact"]["heldout_fidelity"])
    return out


def _noisy_forward(model: QMAE, images: torch.Tensor, mask: torch.Tensor) -> dict[str, Any]:
    """One image through the estimator circuit transpiled for ``fake_fez``, with its noise model."""
    import numpy as np
    from qiskit import transpile
    from qiskit_aer import AerSimulator
    from qiskit_aer.primitives import EstimatorV2
    from qiskit_ibm_runtime.fake_provider import FakeFez

    from ..angles import embedding_angles
    from ..engines.estimator import EstimatorEngine

    engine = model._engine
    assert isinstance(engine, EstimatorEngine)
    backend = FakeFez()
    start = time.perf_counter()
    isa = transpile(engine.qnn.circuit, backend, optimization_level=1, seed_transpiler=0)
    transpile_s = time.perf_counter() - start
    observables = [[op.apply_layout(isa.layout)] for op in engine.qnn.observables]
    noise_model = AerSimulator.from_backend(backend).options.noise_model
    estimator = EstimatorV2(options={"backend_options": {"noise_model": noise_model, "method": "density_matrix"}})
    with torch.no_grad():
        masked = model.fill(images, mask).flatten(1).double()
        angles = torch.cat([embedding_angles(masked), embedding_angles(images.flatten(1).double())], 1)
    values = dict(zip(engine.qnn.circuit.parameters, angles[0].tolist() + model.theta.detach().reshape(-1).tolist()))
    bound = np.array([[values[p] for p in isa.parameters]])
    start = time.perf_counter()
    evs = estimator.run([(isa, observables, bound)], precision=0.0).result()[0].data.evs.ravel()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        exact = float(model.fidelity(images, mask)[0])
    occurrences = 2 * model.theta.numel()  # each weight in U and in U^dagger: 2 shifted runs each
    return {
        "backend": backend.name,
        "two_qubit_gates": int(sum(v for k, v in isa.count_ops().items() if k in ("cz", "ecr", "cx"))),
        "transpile_s": transpile_s,
        "forward_s_per_image": seconds,
        "fidelity_noisy": float(evs[0]),
        "fidelity_exact": exact,
        "parameter_shift_runs_per_image": 2 * occurrences,
        "gradient_s_per_image_estimate": 2 * occurrences * seconds,
    }


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
                "qmae_qiskit.cli",
                "bench",
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


SECTIONS = (
    "exact",
    "roofline",
    "epoch",
    "estimator",
    "estimator_epoch",
    "paper",
    "scaling",
    "memory",
    "evaluation",
    "classifier",
)


def run(*, quick: bool, data_dir: str | None, device: str = "cpu", only: str | None = None) -> dict[str, Any]:
    """Every section (or ``only`` one of :data:`SECTIONS`), with the ratios between those measured."""
    if only is not None and only not in SECTIONS:
        raise ValueError(f"unknown section {only!r}; choose one of {', '.join(SECTIONS)}")
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

    def wanted(name: str) -> bool:
        return only is None or only == name

    if wanted("exact"):
        result["exact"] = bench_exact([1, 32, 128, 512] + ([2048, 8192] if gpu else []), repeat, dev)
    if wanted("roofline"):
        result["roofline"] = bench_roofline(256, repeat, dev)
    if wanted("epoch"):
        result["epoch"] = [bench_epoch(256, None if quick else data_dir, dev)] + (
            [] if quick else [bench_epoch(128, data_dir, dev)]
        )
    if wanted("estimator"):
        if gpu:  # Aer runs on the CPU whatever --device says
            result["estimator"] = {"skipped": "the estimator engine runs on Aer (CPU): see a --device cpu run"}
        else:
            batches = [4, 8] if quick else [32, 256]
            result["estimator"] = bench_estimator(batches, n4_images=1 if quick else 2, noise=not quick)
    if wanted("estimator_epoch"):
        if gpu:
            result["estimator_epoch"] = {"skipped": "the estimator engine runs on Aer (CPU): see a --device cpu run"}
        else:
            result["estimator_epoch"] = bench_estimator_epoch(data_dir, quick=quick)
    if wanted("paper"):
        result["paper"] = bench_paper(1 if quick else 2)
    if wanted("scaling"):
        ns = [4, 6, 8] if quick else [4, 6, 8, 10, 12]  # QMAE's image_size stops at 64x64 (n = 12)
        result["scaling"] = bench_scaling(ns, 8 if quick else 64, 1 if quick else 3, dev)
    if wanted("memory"):
        result["memory_batch512"] = bench_scaling([8], 512, 1, dev)[0]
    if wanted("evaluation"):
        result["evaluation"] = bench_evaluation(500 if quick else 10_000, dev)
    if wanted("classifier"):
        result["classifier"] = bench_classifier(data_dir, quick=quick)
    result["speedup"] = {}
    est = result.get("estimator", {"skipped": "not run"})
    if "skipped" not in est:
        last = est["n8"][-1]  # the largest batch, against the exact engine at that batch in the same run
        result["speedup"][f"estimator_n8_fwd_bwd_batch{last['batch']}_vs_exact"] = last["ratio"]
        result["speedup"]["estimator_aer_gradient_vs_param_shift_n4"] = (
            est["n4_fwd_bwd_param_shift_s_per_image"] / est["n4_fwd_bwd_s_per_image"]
        )
    if "exact" in result:
        exact_1 = result["exact"][0]["s_per_image"]
        best = min(r["s_per_image"] for r in result["exact"])
        if "skipped" not in est:
            result["speedup"]["exact_best_vs_estimator_n8_fwd_bwd"] = est["n8"][-1]["fwd_bwd_s_per_image"] / best
        if "s_per_image" in result.get("paper", {}):
            result["speedup"]["exact_best_vs_paper"] = result["paper"]["s_per_image"] / best
            result["speedup"]["exact_batch1_vs_paper"] = result["paper"]["s_per_image"] / exact_1
    return result


def table(result: dict[str, Any]) -> str:
    """The printed report: one block per section that ran."""
    lines = []
    if "exact" in result:
        lines.append(f"exact engine on {result['machine'].get('device', 'cpu')}, n = 8, forward + backward + Adam:")
        lines.append(f"  {'batch':>6} {'step ms':>9} {'us/image':>9} {'images/s':>10}")
        for r in result["exact"]:
            lines.append(
                f"  {r['batch']:>6} {r['step_s'] * 1e3:>9.2f} {r['s_per_image'] * 1e6:>9.1f} {r['images_per_s']:>10.0f}"
            )
    rf = result.get("roofline")
    if rf:
        lines.append(
            f"roofline at batch {rf['batch']}: products {rf['products_s'] * 1e3:.2f} ms, step "
            f"{rf['step_s'] * 1e3:.2f} ms, efficiency {rf['efficiency']:.0%}"
            f" (epoch: products {rf['products_epoch_s']:.2f} s, engine {rf['step_epoch_s']:.2f} s)"
        )
    for e in result.get("epoch", []):
        lines.append(
            f"epoch over 24,345 images at batch {e['batch']}: {e['epoch_24345_s']:.2f} s (loop; {e['data']}; train() "
            f"call {e['train_call_s']:.1f} s)"
        )
    est = result.get("estimator")
    if est is None:
        pass
    elif "skipped" in est:
        lines.append(f"estimator engine: {est['skipped']}")
    else:
        lines.append(
            "estimator engine (EstimatorQNN on Aer, Aer adjoint gradient) vs exact, n = 8, forward + backward:"
        )
        header = f"{'batch':>6} {'fwd ms/img':>11} {'fwd+bwd ms/img':>15} {'exact us/img':>13} {'ratio':>7}"
        lines.append(f"  {header} {'max diff':>9}")
        for r in est["n8"]:
            lines.append(
                f"  {r['batch']:>6} {r['forward_s_per_image'] * 1e3:>11.1f} {r['fwd_bwd_s_per_image'] * 1e3:>15.1f} "
                f"{r['exact_fwd_bwd_s_per_image'] * 1e6:>13.1f} {r['ratio']:>6.0f}x {r['max_abs_difference']:>9.1e}"
            )
        lines.append(
            f"  n=4 forward+backward {est['n4_fwd_bwd_s_per_image']:.2f} s/image (qiskit-machine-learning's parameter "
            f"shift through TorchConnector: {est['n4_fwd_bwd_param_shift_s_per_image']:.2f})"
        )
        noisy = est.get("noisy")
        if noisy:
            lines.append(
                f"  noisy ({noisy['backend']}'s noise model, density matrix, {noisy['two_qubit_gates']} two-qubit "
                f"gates after transpiling): forward {noisy['forward_s_per_image']:.1f} s/image (F "
                f"{noisy['fidelity_noisy']:.3f} vs {noisy['fidelity_exact']:.3f} noiseless); a parameter-shift "
                f"gradient ("
                f"{noisy['parameter_shift_runs_per_image']} runs) ~{noisy['gradient_s_per_image_estimate'] / 3600:.1f} "
                f"h/image"
            )
    ee = result.get("estimator_epoch")
    if ee and "skipped" not in ee:
        a, b = ee["estimator"], ee["exact"]
        lines.append(
            f"one epoch of qmae train on {ee['train_images']:,} images ({ee['data']}), seed 0: --engine estimator "
            f"{a['wall_s']:.0f} s ({a['wall_s'] / 60:.1f} min), held-out F {a['heldout_fidelity']:.6f}; --engine "
            f"exact {b['wall_s']:.1f} s, held-out F {b['heldout_fidelity']:.6f}; difference "
            f"{ee['heldout_difference']:.1e}"
        )
    paper = result.get("paper")
    if paper:
        lines.append(
            f"paper stack (PennyLane): {paper['s_per_image']:.2f} s/image"
            if "s_per_image" in paper
            else f"paper stack: {paper['skipped']}"
        )
    if "scaling" in result:
        lines.append("scaling (exact, training step):")
    for r in result.get("scaling", []):
        gpu = f", GPU {r['peak_gpu_mib']:.0f} MiB" if "peak_gpu_mib" in r else ""
        lines.append(
            f"  n={r['n']:>2} error: {r['error']}"
            if "error" in r
            else f"  n={r['n']:>2} {r['image']:>6} {r['s_per_image'] * 1e3:>9.3f} ms/image  peak RSS "
            f"{r['peak_rss_mib']:.0f} MiB{gpu}"
        )
    mem = result.get("memory_batch512")
    if mem:
        gpu = f"; GPU {mem['peak_gpu_mib']:.0f} MiB allocated" if "peak_gpu_mib" in mem else ""
        lines.append(
            f"peak memory, training n=8 at batch 512: {mem.get('peak_rss_mib', float('nan')):.0f} MiB (the process, "
            f"torch included){gpu}"
        )
    ev = result.get("evaluation")
    if ev:
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
        for r in est["n8"]:
            bars[f"estimator b={r['batch']} fwd+bwd"] = r["fwd_bwd_s_per_image"]
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
