"""The Sphinx site (issue 22): every public name has an API page, every tutorial shows its figures.

``make docs`` builds the site with warnings as errors and then runs these (``-m docs``); run alone,
they build it first (the notebooks execute once into ``build/notebooks/``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import qmae_qiskit
import qmae_qiskit.circuits
import qmae_qiskit.runtime

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "docs" / "_build" / "html"
DRAWS = re.compile(r"\bplt\.|\.imshow\(|\.plot\(|\.errorbar\(|\.scatter\(|\.bar\(")


@pytest.fixture(scope="module")
def site() -> Path:
    if not (SITE / "index.html").is_file():
        done = subprocess.run(
            [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "docs", str(SITE)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    return SITE


@pytest.mark.parametrize("module", [qmae_qiskit, qmae_qiskit.circuits, qmae_qiskit.runtime], ids=lambda m: m.__name__)
def test_every_public_name_has_an_api_page(site, module):
    missing = [n for n in module.__all__ if not (site / "api" / "_generated" / f"{module.__name__}.{n}.html").is_file()]
    assert not missing, f"no API page for {module.__name__}: {missing}"
    page = (site / "api" / "_generated" / f"{module.__name__}.{sorted(module.__all__)[0]}.html").read_text()
    assert module.__name__ in page
    pages = {n: site / "api" / "_generated" / f"{module.__name__}.{n}.html" for n in module.__all__}
    raw = [n for n, path in pages.items() if ".. auto" in path.read_text()]
    assert not raw, f"pages that show their directives instead of the docstring: {raw}"
    for name in ("train", "QMAE", "evaluate_run") if module is qmae_qiskit else ():  # the docstring, rendered
        text = pages[name].read_text()
        assert "currentmodule" not in text and ("Raises" in text or "Returns" in text), name


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_tutorial_page_shows_its_figures(site, notebook):
    page = site / "tutorials" / f"{notebook.stem}.html"
    assert page.is_file(), f"{notebook.name} is not on the site"
    html = page.read_text()
    plotting = sum(
        1 for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code" and DRAWS.search(c.source)
    )
    images = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert len(images) >= plotting, f"{notebook.name}: {len(images)} figures for {plotting} plotting cells"
    for src in images:  # each figure is a file of the site (or inline data), not a broken link
        assert src.startswith("data:") or (page.parent / src).resolve().is_file(), src


def test_the_guides_and_reports_are_pages(site):
    for name in ("fill", "study", "hardware", "datasets", "reliability", "benchmarks", "architecture"):
        assert (site / f"{name}.html").is_file(), name
    assert (site / "results" / "REPORT.html").is_file()
