# The two commands (README): `make run` and `make test`. Each creates .venv on first use
# and installs the pinned dependencies from requirements.lock, then reuses it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# one seed by default (11 min 20 s of sweep on a 2-core AMD EPYC, plus about 3 min 20 s of install on
# the first call); SEEDS=0,1,2 gives quality verdicts at 3x the cost
SEEDS ?= 0
# two cells train at once, one thread each (timing and memory still run alone); JOBS=1 trains one
# at a time with every thread
JOBS ?= 2
ARGS ?= --variants ln,un,prepbn,crms --seeds $(SEEDS)
# the tests run in two pytest-xdist workers, each test file whole in one (the longest first: tests/conftest.py
# FIRST), each worker on its own cores
# with one torch thread per core (tests/conftest.py); TEST_WORKERS=0 runs them in this process
TEST_WORKERS ?= 2
# gpu-check runs with a Python that already has torch and the dependencies (a GPU machine with no
# package registry): the venv's when it exists, else python3; it installs only the wheels of .whl/
GPU_PY ?= $(shell test -x $(PY) && echo $(PY) || echo python3)

.PHONY: run test lint bench gpu-check wheelhouse venv clean-venv

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) run_suite.py --jobs $(JOBS) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) run_suite.py calibrate --seconds 60
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-group-by=group -q

gpu-check:
	$(GPU_PY) run_suite.py gpu-check $(GPU_ARGS)

# here, with a registry: CPython 3.12 manylinux wheels of what the GPU image lacks, into .whl/ (git-ignored)
wheelhouse:
	$(GPU_PY) scripts/wheelhouse.py --dest .whl

clean-venv:
	rm -rf $(VENV)
