# Two commands from a fresh clone:
#   make demo   set up .venv, build the extension, run the main job
#   make test   set up .venv, build the extension, run the tests
VENV    ?= .venv
PYTHON  := $(VENV)/bin/python
PIP     := $(PYTHON) -m pip
STAMP   := $(VENV)/.apt-fast-installed
NATIVE  := $(shell find csrc bindings -type f) CMakeLists.txt setup.py pyproject.toml

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first, pinned to the local CPU wheel unless a torch is already importable, so that nothing
# below can pull a multi-GB CUDA build; then the build tools and the package with its test extras.
$(STAMP): $(VENV)/bin/python $(NATIVE)
	$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet "setuptools>=64" wheel "pybind11>=2.12" "cmake>=3.18" ninja
	$(PIP) install --quiet --no-build-isolation -e ".[test]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/apt-fast info
	$(VENV)/bin/apt-fast demo --workdir demo-output
	$(VENV)/bin/apt-fast bench --quick --filter distill_loss_fwd_bwd --json demo-output/bench.json

test: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest

bench: setup
	mkdir -p bench-results
	$(PYTHON) -m pytest bench --benchmark-only --benchmark-json=bench-results/pytest-benchmark.json

clean:
	rm -rf build $(VENV) apt_fast/_C*.so bench-results demo-output
