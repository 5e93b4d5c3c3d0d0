# Two commands for a fresh machine:  make demo  (train briefly, print the fidelity)  and  make test
# (ruff, mypy and the unit tests: minutes). make test-slow runs the integration tests that make test
# leaves out (notebooks, studies, hardware benchmarks, full MNIST); CI (.ci/run) runs both.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test test-slow docs typecheck clean

$(BIN)/qmae: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/qmae

demo: install
	rm -rf runs/demo
	$(BIN)/qmae train --out runs/demo --epochs 2 --batch-size 32

test: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(MAKE) typecheck
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow and not docs" -n 2 --dist loadscope tests

test-slow: install
	$(BIN)/python -m pytest -q -m slow tests

# The Sphinx site (docs/conf.py): warnings are errors; then a test opens the built HTML (every public
# name has a page, every tutorial shows its figures). The notebooks run once into build/notebooks/
# (make test-slow's notebook tests write the same copies, so CI does not run them twice).
docs: install
	$(BIN)/python -m sphinx -b html -W --keep-going -q docs docs/_build/html
	$(BIN)/python -m pytest -q -m docs tests/test_docs.py

# mypy over the package as it installs (circuits/ and runtime/ are qmae_qiskit.circuits and .runtime)
TYPECHECK := build/typecheck
typecheck: install
	rm -rf $(TYPECHECK)/qmae_qiskit && mkdir -p $(TYPECHECK)/qmae_qiskit
	ln -s $(CURDIR)/qmae_qiskit/* $(TYPECHECK)/qmae_qiskit/
	ln -s $(CURDIR)/circuits $(TYPECHECK)/qmae_qiskit/circuits
	ln -s $(CURDIR)/runtime $(TYPECHECK)/qmae_qiskit/runtime
	cd $(TYPECHECK) && $(CURDIR)/$(BIN)/python -m mypy --config-file $(CURDIR)/pyproject.toml -p qmae_qiskit

clean:
	rm -rf $(VENV) runs build
