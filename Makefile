# EventCore for Python — the two commands a user needs are `make lab` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# Two virtual environments. .venv-lab is what a learner gets: the `course` extra and nothing
# else; `make lab` runs JupyterLab from it and `make test` runs every notebook on its kernel,
# so CI checks the course in the environment learners use. .venv holds the development tools
# (pytest, nbval, ruff, mypy, Playwright) and, on demand, the book and bench extras.
VENV     := .venv
BIN      := $(VENV)/bin
PY       := $(BIN)/python
LAB_VENV := .venv-lab
LAB_BIN  := $(LAB_VENV)/bin
LAB_PY   := $(LAB_BIN)/python
# Exact versions for every venv: pyproject.toml's extras give ranges, this file the pins.
CONSTRAINTS := constraints.txt
PIP_INSTALL  = -m pip install --quiet -c $(CONSTRAINTS)
# The kernel nbval and the notebook tools run the notebooks on: .venv-lab's Python, registered
# in .venv (so the JupyterLab of .venv-lab does not list a second kernel).
LAB_KERNEL := eventcore-lab
PORT   ?= 8888
SERVE_PORT ?= 8000
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
# JupyterLab serves the whole checkout (links from the notebooks to tutorial/ and book/ open)
# and starts in notebooks/.
LAB_FLAGS = --ServerApp.root_dir=$(CURDIR) --ip 127.0.0.1 --port $(PORT) $(ROOT_FLAG)
NBVAL = --nbval --nbval-kernel-name $(LAB_KERNEL)
TEST_ENV = EVENTCORE_LAB_PYTHON=$(CURDIR)/$(LAB_PY) EVENTCORE_LAB_KERNEL=$(LAB_KERNEL)

.DEFAULT_GOAL := help
.PHONY: help venv lab-venv lab workshop check test lint typecheck unit notebooks \
	notebooks-refresh constraints demo serve clean

help:
	@echo "make lab      - install the course and open it in JupyterLab"
	@echo "make check    - say in one line whether this machine is ready for the course"
	@echo "make test     - install the dev tools and run lint, types, tests and notebooks"
	@echo "make demo     - run a short banking scenario against an SQLite file"
	@echo "make workshop - open the workshop material (tutorial/) in JupyterLab"
	@echo "make serve    - run the bank as a web service on 127.0.0.1:$(SERVE_PORT) (docs at /docs)"
	@echo "make bench    - run the benchmarks (BENCH_ARGS=--quick for a short run)"
	@echo "make book     - build the book (course, concepts, how-tos, API) into book/_build/html"
	@echo "make notebooks-refresh - re-execute every notebook and tidy it (after a library change)"

define make_venv
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH; install Python 3.11"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: $(PYTHON) is older than Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --upgrade pip
endef

$(PY):
	$(call make_venv,$(VENV))

$(LAB_PY):
	$(call make_venv,$(LAB_VENV))

# The learner's environment, refreshed when pyproject.toml, the pins or the Jupyter settings
# change. The settings (jupyter/) switch off JupyterLab's news and update prompts.
$(LAB_VENV)/.course: pyproject.toml $(CONSTRAINTS) jupyter/overrides.json jupyter/jupyter_lab_config.json | $(LAB_PY)
	$(LAB_PY) $(PIP_INSTALL) -e ".[course]"
	mkdir -p $(LAB_VENV)/share/jupyter/lab/settings $(LAB_VENV)/etc/jupyter
	cp jupyter/overrides.json $(LAB_VENV)/share/jupyter/lab/settings/overrides.json
	cp jupyter/jupyter_lab_config.json $(LAB_VENV)/etc/jupyter/jupyter_lab_config.json
	@touch $@

$(VENV)/.dev: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PY) $(PIP_INSTALL) -e ".[dev,postgres,cli,crypto,pydantic,msgspec,web,otel]"
	@touch $@

$(VENV)/.lab-kernel: $(LAB_VENV)/.course $(VENV)/.dev
	$(LAB_PY) -m ipykernel install --prefix $(CURDIR)/$(VENV) --name $(LAB_KERNEL) \
		--display-name "EventCore course (.venv-lab)" >/dev/null 2>&1
	@touch $@

venv: $(VENV)/.dev
lab-venv: $(LAB_VENV)/.course

lab: $(LAB_VENV)/.course
	$(LAB_BIN)/jupyter lab $(LAB_FLAGS) --LabApp.default_url=/lab/tree/notebooks $(LAB_ARGS)

# Instructors: the workshop exercises and solutions (tutorial/) beside the course.
workshop: $(LAB_VENV)/.course
	$(LAB_BIN)/jupyter lab $(LAB_FLAGS) --LabApp.default_url=/lab/tree/tutorial $(LAB_ARGS)

check: $(LAB_VENV)/.course
	@$(LAB_PY) -m eventcore.notebook.check

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check eventcore tests

typecheck: $(VENV)/.dev
	$(BIN)/mypy

unit: $(VENV)/.dev
	$(BIN)/pytest -p no:cacheprovider --doctest-modules eventcore tests

notebooks: $(VENV)/.lab-kernel
	$(BIN)/pytest -p no:cacheprovider $(NBVAL) notebooks tutorial

# One pytest run: unit, property and contract tests, doctests, the browser test (JupyterLab of
# .venv-lab in Chromium) and every notebook (nbval strict, on .venv-lab's kernel).
test: $(VENV)/.lab-kernel
	$(BIN)/ruff check .
	$(BIN)/ruff format --check eventcore tests
	$(BIN)/mypy
	$(TEST_ENV) $(BIN)/pytest -p no:cacheprovider --doctest-modules $(NBVAL) eventcore tests notebooks tutorial

# After a library change moved stored outputs: re-execute every notebook on the learner's
# kernel, tidy it (errors without tracebacks, cell tags, no timing metadata), regenerate the
# learner copies (workbook/), then run nbval. Review the diff before committing.
notebooks-refresh: $(VENV)/.lab-kernel
	$(PY) tests/test_notebook_files.py refresh --kernel $(LAB_KERNEL)
	$(BIN)/pytest -p no:cacheprovider -q $(NBVAL) notebooks tutorial

demo: $(VENV)/.dev
	$(PY) -m eventcore.demo

# The bank as a web service (eventcore.examples.service, FastAPI under uvicorn) on 127.0.0.1:
# SQLite in build/service/bank.db with no setup, PostgreSQL when EVENTCORE_POSTGRES_URL is
# set. OpenAPI docs at http://127.0.0.1:$(SERVE_PORT)/docs.
serve: $(VENV)/.dev
	$(PY) -m eventcore.examples.service --port $(SERVE_PORT)

# Rebuild constraints.txt from a scratch venv holding every extra at its newest allowed
# version; then run `make notebooks-refresh` and `make test`, and commit both.
constraints:
	rm -rf build/constraints-venv
	$(PYTHON) -m venv build/constraints-venv
	build/constraints-venv/bin/python -m pip install --quiet -e ".[course,dev,postgres,book,bench]"
	{ sed -n '/^#/p' $(CONSTRAINTS); build/constraints-venv/bin/python -m pip freeze --exclude-editable; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf build/constraints-venv

# The book: Sphinx + myst-nb execute the notebooks (results cached in book/_build), -E re-reads
# every page so each warning is reported on every build, and -W turns any warning into a failure.
.PHONY: book
$(VENV)/.book: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PY) $(PIP_INSTALL) -e ".[book]"
	@touch $@ $(VENV)/.dev

book: $(VENV)/.book
	$(BIN)/sphinx-build -E -W --keep-going -b html book book/_build/html

# Benchmarks: EventCore vs the eventsourcing library vs raw sqlite3/psycopg, on memory, SQLite
# and PostgreSQL (EVENTCORE_POSTGRES_URL; skipped with a note when unreachable), then projection
# catch-up and live delivery (their own section). Writes benchmarks/results/results.{json,md}
# and chart.png; then snapshots, then asyncio transfers on PostgreSQL (async.{json,md}).
# BENCH_ARGS=--quick for a one-minute run (python -m benchmarks run --help).
.PHONY: bench
$(VENV)/.bench: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PY) $(PIP_INSTALL) -e ".[bench]"
	@touch $@

bench: $(VENV)/.bench
	$(PY) -m benchmarks run $(BENCH_ARGS)
	$(PY) -m benchmarks snapshots $(filter --quick,$(BENCH_ARGS))
	$(PY) -m benchmarks partitions $(filter --quick,$(BENCH_ARGS))
	$(PY) -m benchmarks privacy $(filter --quick,$(BENCH_ARGS))
	$(PY) -m benchmarks http $(filter --quick,$(BENCH_ARGS))
	$(PY) -m benchmarks async $(filter --quick,$(BENCH_ARGS))
	$(PY) -m benchmarks observability $(filter --quick,$(BENCH_ARGS))

clean:
	rm -rf $(VENV) $(LAB_VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info book/_build
