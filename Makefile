# convexnn developer tasks. Everything runs inside ./.venv (created on demand).
#
#   make venv     create .venv (python3 -m venv) if it is missing, upgrade pip
#   make install  editable install of convexnn (core dependencies only)
#   make demo     install, then run `convexnn demo`
#   make test     install with the dev extras, then run the test suite on 2 workers
#   make docs     install with the docs extras, build the HTML docs into docs/_build/html
#                 (runs the examples/ gallery; warnings are errors)
#   make bench    install the peers (pyscnn into .venv; adelie into benchmarks/.venv-adelie),
#                 run the speed benchmarks of issue 3, write benchmarks/results/speed.{json,md}
#                 (resumable: stored per-problem results are kept; BENCH_FLAGS=--force redoes them)
#   make clean    remove build artefacts and caches (keeps .venv)
#   make distclean  clean, and remove .venv too
#
# Installs are recorded by stamp files inside .venv that depend on pyproject.toml, so a
# second `make test` goes straight to pytest; edit pyproject.toml (or `make distclean`)
# to reinstall. The editable install picks up new or changed modules without reinstalling.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PIP_FLAGS := --quiet --disable-pip-version-check --no-input
# Pinned so that pip takes the local CPU wheel; an unpinned torch would pull
# several GB of CUDA packages from the registry.
TORCH_VERSION := 2.13.0
PYTEST_FLAGS ?= -q -n 2
# One BLAS/OpenMP thread per pytest worker: with 2 workers on 2 cores, multi-threaded
# BLAS oversubscribes the machine and runs up to 20x slower.
TEST_ENV := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: venv install demo test docs clean distclean

venv: $(BIN)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install $(PIP_FLAGS) --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install $(PIP_FLAGS) -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) "torch==$(TORCH_VERSION)"
	$(PIP) install $(PIP_FLAGS) -e ".[dev]"
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/convexnn demo

test: $(VENV)/.installed-dev
	$(TEST_ENV) $(BIN)/python -m pytest $(PYTEST_FLAGS) tests

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(PIP) install $(PIP_FLAGS) -e ".[docs]"
	@touch $@ $(VENV)/.installed

docs: $(VENV)/.installed-docs
	$(TEST_ENV) $(BIN)/python -m sphinx -b html -W --keep-going docs docs/_build/html

# --- speed benchmarks (issue 3) ---------------------------------------------------------
# pyscnn declares torchvision but runs without it, hence --no-deps plus its real imports.
# adelie pins numpy<2, so it gets its own virtualenv and runs as a subprocess.
BENCH_ADELIE := benchmarks/.venv-adelie
BENCH_FLAGS ?=
BENCH_SCRIPTS := speed_iteration speed_memory speed_gated speed_relu speed_adam

.PHONY: bench
$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(PIP) install $(PIP_FLAGS) --no-deps pyscnn linalg_backends
	$(PIP) install $(PIP_FLAGS) opt_einsum cvxpy tqdm
	@touch $@

$(BENCH_ADELIE)/.installed:
	$(PYTHON) -m venv $(BENCH_ADELIE)
	$(BENCH_ADELIE)/bin/python -m pip install $(PIP_FLAGS) adelie
	@touch $@

bench: $(VENV)/.installed-bench $(BENCH_ADELIE)/.installed
	for s in $(BENCH_SCRIPTS); do $(TEST_ENV) $(BIN)/python benchmarks/$$s.py $(BENCH_FLAGS) || exit 1; done
	$(BIN)/python benchmarks/speed_report.py $(filter --quick,$(BENCH_FLAGS))

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache htmlcov .coverage benchmarks/results/tmp
	rm -rf docs/_build docs/generated docs/auto_examples docs/gen_modules docs/_api_names.rst docs/sg_execution_times.rst
	find . -path ./$(VENV) -prune -o -name '*.egg-info' -prune -exec rm -rf {} + 2>/dev/null || true
	find . -path ./$(VENV) -prune -o -name '__pycache__' -type d -prune -exec rm -rf {} + 2>/dev/null || true

distclean: clean
	rm -rf $(VENV)
