"""The module graph of ``qmae_qiskit`` stays layered (docs/architecture.md): no import cycles, the
circuits stay pure Qiskit, nothing reaches into the training loop, and the core never imports the
runtime. Read from the source with ``ast``, so every import counts, lazy ones included."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "qmae_qiskit": ROOT / "qmae_qiskit",
    "qmae_qiskit.circuits": ROOT / "circuits",
    "qmae_qiskit.runtime": ROOT / "runtime",
}


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str, path: Path) -> dict[str, set[str]]:
    """Modules of the package that ``name`` imports, with the names it takes from each."""
    tree = ast.parse(path.read_text())
    out: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(name, node, path.name == "__init__.py")
            for alias in node.names:
                full = f"{target}.{alias.name}"
                key = full if full in MODULES else target
                if key in MODULES:
                    out.setdefault(key, set()).add(alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    out.setdefault(alias.name, set())
    out.pop(name, None)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycle() -> list[str] | None:
    # package __init__ files re-export their children; an edge into a package is an edge into its API
    graph = {m: {t for t in deps if not (t in PACKAGES and m.startswith(t + "."))} for m, deps in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_the_graph_is_read():
    assert {
        "qmae_qiskit.model",
        "qmae_qiskit.training",
        "qmae_qiskit.circuits.fidelity",
        "qmae_qiskit.runtime.records",
    } <= set(MODULES)
    assert "qmae_qiskit.checkpoint" in GRAPH["qmae_qiskit.model"]


def test_no_import_cycles():
    assert _cycle() is None, " -> ".join(_cycle() or [])


def test_nothing_reaches_into_the_training_loop():
    public = {"TrainConfig", "TrainResult", "train", "resume"}
    for module, deps in GRAPH.items():
        taken = deps.get("qmae_qiskit.training", set())
        assert taken <= public, f"{module} imports {sorted(taken - public)} from qmae_qiskit.training"


def test_circuits_are_pure_qiskit():
    for name, path in MODULES.items():
        if name.startswith("qmae_qiskit.circuits"):
            tree = ast.parse(path.read_text())
            imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            imported |= {
                (n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0
            }
            assert not imported & {"torch", "qmae_qiskit"}, f"{name} imports {imported & {'torch', 'qmae_qiskit'}}"
            assert all(d.startswith("qmae_qiskit.circuits") for d in GRAPH[name]), name


def test_the_core_does_not_import_the_runtime():
    front_doors = {"qmae_qiskit.cli"}
    for module, deps in GRAPH.items():
        if module.startswith("qmae_qiskit.runtime") or module in front_doors:
            continue
        assert not any(d.startswith("qmae_qiskit.runtime") for d in deps), f"{module} imports the runtime"


def test_job_records_are_the_runtimes_base_layer():
    deps = GRAPH["qmae_qiskit.runtime.records"]
    assert not any(d.startswith("qmae_qiskit.runtime.") for d in deps), deps


def test_test_files_have_unique_names():
    # tests/ has no __init__.py files, so pytest imports each test module by its basename: two
    # files with one name in different folders abort collection on a clean checkout.
    tests = Path(__file__).resolve().parent
    names = [p.name for p in tests.rglob("test_*.py") if ".ipynb_checkpoints" not in p.parts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"rename these test files, their basenames clash: {duplicates}"
