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
