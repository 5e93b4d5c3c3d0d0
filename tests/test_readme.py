"""The README's Python example runs as written, and its two commands are what the Makefile and CI use."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_python_example_runs_as_written():
    block = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    assert len(block.strip().splitlines()) <= 10
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    fidelity, shape, qubits = done.stdout.split(" ", 1)[0], done.stdout, done.stdout.split()[-1]
    assert 0.0 < float(fidelity) < 1.0
    assert "torch.Size([16, 16, 16])" in shape and qubits == "17"


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
                assert (ROOT / link[len(prefix) :]).exists(), f"README links to a missing file: {link}"
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
