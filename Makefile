# Set-up and the two commands of the README. Every target installs what it needs first, so each
# works on a fresh clone: `make demo` runs the demo, `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch; install it before anything that depends on torch, or pip pulls the
# multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup test test-all demo clean gpu-wheels

$(BIN)/xaibids: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(BIN)/xaibids

setup: $(BIN)/xaibids

test: setup
	$(BIN)/python -m pytest -m "not slow" -n auto --dist loadfile --durations=25 tests

test-all: setup
	$(BIN)/python -m pytest -n auto --dist loadfile tests

demo: setup
	$(BIN)/xaibids demo demo_output

# Wheels for the GPU machine (Python 3.12, PyTorch already there): what xaibids' CUDA checks
# import that its image lacks. Carried in .whl/ by benchmarks/gpu_check.sh (DEVELOPERS.md).
gpu-wheels:
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux2014_x86_64 --platform any -d .whl \
		captum==0.9.0 nibabel==5.4.2 pydot==4.0.1

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
