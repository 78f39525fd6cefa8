# attention-book: one command to set up and build the book, one to run the tests.
#   make book   create .venv, install attn with its book and test tools, build _build/html
#   make test   create .venv if needed, run the whole test suite
# Set PYTHON to choose the interpreter (3.10+), e.g. make book PYTHON=python3.11.

PYTHON ?= python3
VENV ?= .venv
# The torch build the book's numbers were measured with; on the development and CI machines
# it comes from local disk. `make setup TORCH_PINS=` keeps whatever torch pip resolves instead.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
PY := $(VENV)/bin/python
# The offline CIFAR-10 copy beside the repository on the development and CI machines;
# elsewhere torchvision downloads CIFAR-10 (see README).
ARCHIVE := $(wildcard $(abspath ../shared/data/cifar10-jpeg.tar.gz))
ifneq ($(ARCHIVE),)
export ATTN_CIFAR10_ARCHIVE ?= $(ARCHIVE)
endif

.PHONY: setup test book clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(if $(strip $(TORCH_PINS)),$(PY) -m pip install --quiet $(TORCH_PINS))
	$(PY) -m pip install --quiet -e ".[test,docs]"
	touch $@

test: setup
	$(PY) -m pytest

book: setup
	$(VENV)/bin/jupyter-book build --warningiserror --nitpick --keep-going .

clean:
	rm -rf _build
