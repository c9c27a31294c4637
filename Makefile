# phenoseg: two set-up commands.
#   make demo   creates .venv, installs phenoseg, segments the bundled example images into demo_output/
#   make test   creates .venv, installs phenoseg with its test extras, runs ruff and the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch first, pinned: 2.13.0 is the CPU build (an unpinned torch pulls a multi-GB CUDA build)
install: $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"

demo: install
	$(BIN)/phenoseg models
	$(BIN)/phenoseg segment examples/he_dsb2018.tif examples/fluo_dsb2018.tif -o demo_output

test: install-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo_output .pytest_cache
