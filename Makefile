# Every target sets up the virtual environment it needs (re-installed when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test test-fast test-all demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# Test files run in parallel, one per core; a file's tests stay together to share fixtures.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# The quick loop while editing: everything but the tests marked slow (training, CLI subprocesses).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n auto

demo: $(STAMP)
	$(BIN)/python -m speechrnn.demo

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) outputs multirun .cache
