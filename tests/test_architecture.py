"""The module graph of ``qmae_qiskit`` stays layered as docs/architecture.md states it: each module
imports only from its own layer and the layers above it in the doc's table (read from the doc
itself), no import cycles, the circuits stay pure Qiskit, nothing reaches into the training loop,
and a job's data flows one way through the runtime. Read from the source with ``ast``, so every
import counts, lazy ones included."""

from __future__ import annotations

import ast
import re
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


def _layers() -> list[tuple[str, list[str]]]:
    """``(layer, modules)`` from the table of docs/architecture.md, top (most basic) first."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("| layer | modules | owns |", 1)[1].split("\n\n", 1)[0]
    layers = []
    for row in table.strip().splitlines()[1:]:
        name, modules = (cell.strip() for cell in row.strip("|").split("|")[:2])
        found = [m if m == "qmae_qiskit" else f"qmae_qiskit.{m}" for m in re.findall(r"`([\w.]+)`", modules)]
        layers.append((name, found))
    return layers


LAYERS = _layers()
LAYER_OF = {module: k for k, (_, modules) in enumerate(LAYERS) for module in modules}


def test_the_doc_names_every_module_once():
    named = [m for _, modules in LAYERS for m in modules]
    assert len(LAYERS) >= 8 and sorted(set(named)) == sorted(named), "a module is named in two layers"
    assert set(named) == set(MODULES), (
        f"docs/architecture.md's table misses {sorted(set(MODULES) - set(named))} "
        f"and names {sorted(set(named) - set(MODULES))}, which do not exist"
    )


def test_each_module_imports_only_its_own_layer_and_those_above():
    wrong = [
        f"{module} ({LAYERS[LAYER_OF[module]][0]}) imports {dep} ({LAYERS[LAYER_OF[dep]][0]})"
        for module, deps in GRAPH.items()
        for dep in deps
        if LAYER_OF[dep] > LAYER_OF[module]
    ]
    assert not wrong, "; ".join(wrong)


def test_the_core_imports_neither_the_runtime_nor_the_studies():
    core = [m for m in MODULES if LAYER_OF[m] <= LAYER_OF["qmae_qiskit.training"]]
    assert "qmae_qiskit.model" in core and "qmae_qiskit.engines.exact" in core
    for module in core:
        bad = [d for d in GRAPH[module] if d.startswith(("qmae_qiskit.runtime", "qmae_qiskit.studies"))]
        assert not bad, f"{module} imports {bad}"


def test_job_records_are_the_runtimes_base_layer():
    """A record imports nothing of the runtime but the declaration of its own options."""
    deps = GRAPH["qmae_qiskit.runtime.records"]
    assert not any(d.startswith("qmae_qiskit.runtime.") and d != "qmae_qiskit.runtime.options" for d in deps), deps
    assert "qmae_qiskit.runtime.records" not in GRAPH["qmae_qiskit.runtime.options"]


def test_a_jobs_data_flows_one_way():
    for module in ("qmae_qiskit.runtime.retrieval", "qmae_qiskit.runtime.scoring", "qmae_qiskit.runtime.execution"):
        assert "qmae_qiskit.runtime.submission" not in GRAPH[module], f"{module} imports submission"
    assert "qmae_qiskit.runtime.retrieval" not in GRAPH["qmae_qiskit.runtime.scoring"]


def test_test_files_have_unique_names():
    # tests/ has no __init__.py files, so pytest imports each test module by its basename: two
    # files with one name in different folders abort collection on a clean checkout.
    tests = Path(__file__).resolve().parent
    names = [p.name for p in tests.rglob("test_*.py") if ".ipynb_checkpoints" not in p.parts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"rename these test files, their basenames clash: {duplicates}"


def test_the_model_class_binds_no_circuits():
    """QMAE is the torch side only: no Qiskit import in model.py, and the class stays readable
    (its circuits are model_circuits', its position weights conditioning's)."""
    source = (ROOT / "qmae_qiskit" / "model.py").read_text()
    tree = ast.parse(source)
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert not [m for m in imported if m.split(".")[0] == "qiskit"], imported
    qmae = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "QMAE")
    assert qmae.end_lineno - qmae.lineno + 1 < 450


def test_every_flag_comes_from_an_options_declaration():
    """No ``add_argument`` outside the options machinery (``options.add_flags``): every flag of every
    command is generated from one declaration, and cli.py only registers the commands."""
    calls = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
                calls.append(name)
    assert set(calls) == {"qmae_qiskit.options"}, calls
    assert len((ROOT / "qmae_qiskit" / "cli.py").read_text().splitlines()) < 150


def test_every_command_has_its_own_module():
    """``qmae_qiskit.commands``: one module per command, each with ``register`` and ``run``."""
    from qmae_qiskit.cli import _parser
    from qmae_qiskit.commands import COMMANDS

    sub = next(a for a in _parser()._actions if a.dest == "command")
    assert len(COMMANDS) == len(sub.choices) == 12
    for module in COMMANDS:
        assert callable(module.register) and callable(module.run), module.__name__
