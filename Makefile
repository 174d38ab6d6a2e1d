# EventCore for Python — the two commands a user needs are `make lab` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
PORT   ?= 8888

.DEFAULT_GOAL := help
.PHONY: help venv lab test lint typecheck unit notebooks demo clean

help:
	@echo "make lab    - install the course and open it in JupyterLab"
	@echo "make test   - install the dev tools and run lint, types, tests and notebooks"
	@echo "make demo   - run a short banking scenario against an SQLite file"

# The venv is (re)built when pyproject.toml changes; the stamp records which extras it holds.
$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
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
	$(BIN)/jupyter lab notebooks --ip 127.0.0.1 --port $(PORT) --no-browser $(LAB_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check eventcore tests

typecheck: $(VENV)/.dev
	$(BIN)/mypy

unit: $(VENV)/.dev
	$(BIN)/pytest tests eventcore --doctest-modules -p no:cacheprovider

notebooks: $(VENV)/.dev
	$(BIN)/pytest --nbval --nbval-current-env -p no:cacheprovider notebooks

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check eventcore tests
	$(BIN)/mypy
	$(BIN)/pytest -p no:cacheprovider --doctest-modules eventcore tests
	$(BIN)/pytest -p no:cacheprovider --nbval --nbval-current-env notebooks

demo: $(VENV)/.course
	$(PY) -m eventcore.demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
