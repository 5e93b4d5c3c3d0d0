"""Sphinx configuration of the qmae-qiskit site (``make docs``).

The site: the tutorials (the notebooks, rendered with their outputs), the guides (the Markdown files
in ``docs/``, through MyST), the results reports, and an API reference with one page per public
name of ``qmae_qiskit``, ``qmae_qiskit.circuits`` and ``qmae_qiskit.runtime`` (autosummary; the
list is generated from their ``__all__`` at build time, so a new public name gets a page).

The notebooks are committed without outputs. They are executed headless (nbclient) into
``build/notebooks/`` when that copy is missing or older than the notebook: CI's notebook tests
write the same copies (``tests/test_notebooks.py``), so a CI build renders what the tests ran.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

project = "qmae-qiskit"
author = "the qmae-qiskit developers"
copyright = "2026, the qmae-qiskit developers"  # noqa: A001 (Sphinx's name)
html_title = "qmae-qiskit"
html_copy_source = False  # the pages, not their sources (autosummary's stubs are directives)
html_theme = "qiskit-ecosystem"
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "qiskit_sphinx_theme",
]
autosummary_generate = True
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields: autodoc documents the members themselves once
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]
nb_execution_mode = "off"  # executed below, once, into build/notebooks
suppress_warnings = ["myst.header"]  # the guides start at "#" and step down as GitHub renders them
exclude_patterns = [
    "_build",
    "**/runs/**",
    "hardware/hardware.md",
    "results/table1.md",  # included whole in results/REPORT.md
    "results/inpainting.md",  # idem
    "Thumbs.db",
    ".DS_Store",
]
# .rst first: autosummary writes its stub pages (reStructuredText) with the first suffix; as .md they
# would render their directives as text instead of the docstrings
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

EXECUTED = ROOT / "build" / "notebooks"
TUTORIALS = DOCS / "tutorials"


def execute_notebook(source: Path, target: Path) -> None:
    """Run ``source`` headless as the notebook tests do and write it, outputs included, to ``target``."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(source, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        saved = {k: os.environ.get(k) for k in ("QMAE_JOBS_DIR", "MPLBACKEND")}
        os.environ["QMAE_JOBS_DIR"] = str(Path(tmp) / "jobs")
        try:
            resources = {"metadata": {"path": str(source.parent)}}
            NotebookClient(nb, timeout=1800, kernel_name="python3", resources=resources).execute()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)


def _tutorials() -> None:
    TUTORIALS.mkdir(exist_ok=True)
    for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
        executed = EXECUTED / source.name
        if not executed.is_file() or executed.stat().st_mtime < source.stat().st_mtime:
            print(f"executing {source.name} (no up-to-date copy in {EXECUTED})", flush=True)
            execute_notebook(source, executed)
        _copy_for_the_site(executed, TUTORIALS / source.name)


def _copy_for_the_site(executed: Path, target: Path) -> None:
    """The executed notebook, its links made relative to ``docs/tutorials/`` (in the repository they
    are relative to ``notebooks/``: ``../docs/study.md`` is ``../study.md`` on the site)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace("](../docs/", "](../")
    nbformat.write(nb, target)


def _api_pages() -> None:
    """``api.rst``: one autosummary entry (one page) per public name, from the packages' ``__all__``."""
    import qmae_qiskit
    import qmae_qiskit.circuits
    import qmae_qiskit.runtime

    lines = [
        "API reference",
        "=============",
        "",
        "Every public name of the three packages, one page each (generated from their ``__all__``).",
        "",
    ]
    for module in (qmae_qiskit, qmae_qiskit.circuits, qmae_qiskit.runtime):
        title = f"``{module.__name__}``"
        lines += [title, "-" * len(title), "", f".. currentmodule:: {module.__name__}", ""]
        lines += [".. autosummary::", "   :toctree: api/_generated", ""]
        lines += [f"   {name}" for name in sorted(module.__all__)]
        lines.append("")
    (DOCS / "api.rst").write_text("\n".join(lines))


_tutorials()
_api_pages()


def _site_links(app, docname: str, source: list[str]) -> None:
    """The guides link the notebooks as the repository holds them (``../notebooks/X.ipynb``); on the
    site they are the tutorials (``tutorials/X.ipynb``)."""
    if not docname.startswith("tutorials/"):
        source[0] = source[0].replace("](../notebooks/", "](tutorials/")


def setup(app) -> dict[str, bool]:
    app.connect("source-read", _site_links)
    return {"parallel_read_safe": True}
