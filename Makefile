# EventCore for Python — the two commands a user needs are `make lab` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
PORT   ?= 8888
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.DEFAULT_GOAL := help
.PHONY: help venv lab test lint typecheck unit notebooks demo clean

help:
	@echo "make lab    - install the course and open it in JupyterLab"
	@echo "make test   - install the dev tools and run lint, types, tests and notebooks"
	@echo "make demo   - run a short banking scenario against an SQLite file"

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
	$(BIN)/pytest -p no:cacheprovider --doctest-modules --nbval --nbval-current-env eventcore tests notebooks

demo: $(VENV)/.course
	$(PY) -m eventcore.demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
