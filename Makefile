# EventCore for Python — the two commands a user needs are `make lab` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
PORT   ?= 8888
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.DEFAULT_GOAL := help
.PHONY: help venv lab workshop test lint typecheck unit notebooks demo clean

help:
	@echo "make lab    - install the course and open it in JupyterLab"
	@echo "make test   - install the dev tools and run lint, types, tests and notebooks"
	@echo "make demo   - run a short banking scenario against an SQLite file"
	@echo "make workshop - open the workshop exercises (tutorial/) in JupyterLab"
	@echo "make bench  - run the benchmarks (BENCH_ARGS=--quick for a short run)"
	@echo "make book   - build the book (course, concepts, how-tos, API) into book/_build/html"

# The venv is (re)built when pyproject.toml changes; the stamp records which extras it holds.
$(PY):
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH; install Python 3.11"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: $(PYTHON) is older than Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.course: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[course]"
	@touch $@

$(VENV)/.dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev,postgres]"
	@touch $@ $(VENV)/.course

venv: $(VENV)/.dev

lab: $(VENV)/.course
	$(BIN)/jupyter lab notebooks --ip 127.0.0.1 --port $(PORT) $(ROOT_FLAG) $(LAB_ARGS)

# Instructors: the workshop exercises and solutions (tutorial/) beside the course.
workshop: $(VENV)/.course
	$(BIN)/jupyter lab tutorial --ip 127.0.0.1 --port $(PORT) $(ROOT_FLAG) $(LAB_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check eventcore tests

typecheck: $(VENV)/.dev
	$(BIN)/mypy

unit: $(VENV)/.dev
	$(BIN)/pytest -p no:cacheprovider --doctest-modules eventcore tests

notebooks: $(VENV)/.dev
	$(BIN)/pytest -p no:cacheprovider --nbval --nbval-current-env notebooks

# One pytest run: unit, property and contract tests, doctests, and the notebooks (nbval strict).
test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check eventcore tests
	$(BIN)/mypy
	$(BIN)/pytest -p no:cacheprovider --doctest-modules --nbval --nbval-current-env eventcore tests notebooks tutorial

demo: $(VENV)/.course
	$(PY) -m eventcore.demo

# The book: Sphinx + myst-nb execute the notebooks (results cached in book/_build), -E re-reads
# every page so each warning is reported on every build, and -W turns any warning into a failure.
.PHONY: book
$(VENV)/.book: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[book]"
	@touch $@ $(VENV)/.dev $(VENV)/.course

book: $(VENV)/.book
	$(BIN)/sphinx-build -E -W --keep-going -b html book book/_build/html

# Benchmarks: EventCore vs the eventsourcing library vs raw sqlite3/psycopg, on memory, SQLite
# and PostgreSQL (EVENTCORE_POSTGRES_URL; skipped with a note when unreachable), then projection
# catch-up and live delivery (their own section). Writes benchmarks/results/results.{json,md}
# and chart.png. BENCH_ARGS=--quick for a one-minute run (python -m benchmarks run --help).
.PHONY: bench
$(VENV)/.bench: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[bench]"
	@touch $@

bench: $(VENV)/.bench
	$(PY) -m benchmarks run $(BENCH_ARGS)
	$(PY) -m benchmarks snapshots $(filter --quick,$(BENCH_ARGS))

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info book/_build
