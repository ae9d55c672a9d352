PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint clean

# one-time set-up: a local virtual environment, CPU torch 2.13.0 first, then the package
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e ".[generate,test,tensorboard,root]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/hepae demo -o demo-output

# the suite in parallel: one worker per core (at most 4), each test file on one worker
test: setup
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) demo-output .pytest_cache
