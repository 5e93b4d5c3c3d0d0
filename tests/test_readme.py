"""The README's Python example runs as written, and its two commands are what the Makefile and CI use."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_python_example_runs_as_written(tmp_path):
    """Run in a fresh directory (it trains into runs/from-tensor), as a user pasting it would."""
    block = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    assert len(block.strip().splitlines()) <= 14
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    fidelity, *_, qubits = lines[0].split()
    assert 0.0 < float(fidelity) < 1.0
    assert "torch.Size([16, 16, 16])" in lines[0] and qubits == "17"
    trained, kept = (float(v) for v in lines[-1].split())
    assert trained > float(fidelity) + 0.3 and 0.5 < kept <= 1.0  # trained: 0.81 / 0.88 vs 0.26 untrained
    assert (tmp_path / "runs" / "from-tensor" / "dataset.pt").exists()


def test_readme_opens_with_the_two_commands_ci_uses():
    first = re.search(r"```bash\n(.*?)```", README, re.S).group(1).splitlines()
    assert [line.split()[0:2] for line in first] == [["make", "demo"], ["make", "test"]]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_links_work_off_github():
    """The README is also the package's page on PyPI, where relative links break: every link is
    absolute, and each into this repository names a file that exists."""
    base = re.search(r"^url = (\S+)", (ROOT / "setup.cfg").read_text(), re.M).group(1).rstrip("/")
    raw = base.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    links = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", README)
    assert links
    for link in links:
        assert link.startswith(("https://", "http://", "#")), f"relative link in README.md: {link}"
        for prefix in (base + "/blob/main/", raw):
            if link.startswith(prefix):
                path = link[len(prefix) :].split("#")[0]  # a section anchor names a place in the file
                assert (ROOT / path).exists(), f"README links to a missing file: {link}"
    assert (ROOT / "LICENSE").read_text().count("Apache License") >= 1
    assert "arXiv:2511.17372" in (ROOT / "CITATION.cff").read_text()


def test_dependency_floors_admit_what_the_code_uses():
    """Floors raised to what the code imports: executor_sampler arrived in qiskit-ibm-runtime 0.50."""
    import importlib.metadata as md

    cfg = (ROOT / "setup.cfg").read_text()
    assert "qiskit-ibm-runtime>=0.50" in cfg and "filelock>=" in cfg
    from qiskit_ibm_runtime.executor_sampler import Sampler  # noqa: F401

    major, minor = (int(v) for v in md.version("qiskit-ibm-runtime").split(".")[:2])
    assert (major, minor) >= (0, 50)
