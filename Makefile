# Two commands for a fresh machine:  make demo  (train briefly, print the fidelity)  and  make test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test clean

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
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) runs
