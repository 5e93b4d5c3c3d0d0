"""Every notebook runs top to bottom, and every cell that draws shows its figure.

A notebook can "pass" while showing nothing: a library call that switches matplotlib to Agg
silences every later ``plt.show()``. So each notebook is executed headless with ``nbclient`` (as
Jupyter would run it) and each plotting cell must have produced a PNG output.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXECUTED = ROOT / "build" / "notebooks"
DRAWS = re.compile(r"\bplt\.|\.imshow\(|\.plot\(|\.errorbar\(|\.scatter\(|\.bar\(")


def _plotting(cell) -> bool:
    return cell.cell_type == "code" and bool(DRAWS.search(cell.source))


def _images(cell) -> int:
    return sum(1 for out in cell.get("outputs", []) if "image/png" in out.get("data", {}))


def test_there_are_notebooks_with_plots():
    assert len(NOTEBOOKS) >= 3
    for path in NOTEBOOKS:
        assert any(_plotting(c) for c in nbformat.read(path, as_version=4).cells), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_every_plot_appears(path, tmp_path, monkeypatch):
    monkeypatch.setenv("QMAE_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    blank = [i for i, cell in enumerate(nb.cells) if _plotting(cell) and _images(cell) == 0]
    assert not blank, f"{path.name}: plotting cells {blank} produced no image"
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            assert "IProgress not found" not in text, f"{path.name} cell {i}: ipywidgets missing ({text[:80]})"
    EXECUTED.mkdir(parents=True, exist_ok=True)  # what make docs renders: the notebook as this test ran it
    nbformat.write(nb, EXECUTED / path.name)
