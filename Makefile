# medtorch: `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PIP     = $(BIN)/python -m pip
OUT    ?= runs
# pip only: torch/torchvision resolve to the local 2.14.1 / 0.29.1 wheels on this machine.
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: demo test lint typecheck unit realdata bench docs install install-test install-docs clean help

help:
	@echo "make demo   - create $(VENV), install, train the seizure CNN on the bundled data, write a run report"
	@echo "make test   - install test extras, run ruff, mypy and the whole test suite (real-data tests when MEDTORCH_DATA is set)"
	@echo "make docs   - build the documentation site into site/ (mkdocs, warnings are errors)"
	@echo "make bench  - run the benchmarks in benchmarks/ (long)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install when pyproject.toml changes (stamp files depend on it).
$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	$(PIP) install $(PIP_FLAGS) -e .
	@touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(PIP) install $(PIP_FLAGS) -e ".[dev]"
	@touch $@ $(VENV)/.stamp-base

$(VENV)/.stamp-docs: pyproject.toml | $(BIN)/python
	$(PIP) install $(PIP_FLAGS) -e ".[docs]"
	@touch $@ $(VENV)/.stamp-base

install: $(VENV)/.stamp-base
install-test: $(VENV)/.stamp-dev
install-docs: $(VENV)/.stamp-docs

demo: install
	$(BIN)/medtorch demo --out $(OUT)

lint: install-test
	$(BIN)/ruff check src tests benchmarks tools labs
	$(BIN)/ruff format --check src tests benchmarks tools labs

typecheck: install-test
	$(BIN)/mypy

# two test processes on two cores: one thread each for torch, OpenMP and BLAS (and the lab
# notebooks' kernels), so they never oversubscribe the cores (OpenMP threads spin-wait)
unit: install-test
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 -q

test: lint typecheck unit

# the reference pages (recipe keys, datasets, models, API) are generated from the code by
# tools/docs_reference.py, the mkdocs hook
docs: install-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

bench: install-test
	$(BIN)/python benchmarks/speed/lab_seizure.py

clean:
	rm -rf $(VENV) runs site .pytest_cache .mypy_cache .ruff_cache
