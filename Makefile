# attention-book: one command to set up and build the book, one to run the tests.
#   make book   create .venv, install attn with its book and test tools and MathJax (npm),
#               build _build/html
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

# MathJax 3 for the pages, served by the site itself so that they read offline. Installed from
# npm into _vendor/mathjax (ignored by git): the TeX-input/HTML-output bundle, the parts it
# loads on demand (TeX extensions, fonts, accessibility, menu) and the licence.
MATHJAX_VERSION := 3.2.2
MATHJAX := _vendor/mathjax/tex-mml-chtml.js
MATHJAX_PARTS := LICENSE es5/tex-mml-chtml.js es5/input es5/output/chtml es5/a11y es5/sre es5/ui

.PHONY: setup mathjax test book clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(if $(strip $(TORCH_PINS)),$(PY) -m pip install --quiet $(TORCH_PINS))
	$(PY) -m pip install --quiet -e ".[test,docs,yolo]"
	touch $@

mathjax: $(MATHJAX)

$(MATHJAX):
	rm -rf _vendor/mathjax _vendor/mathjax.partial
	mkdir -p _vendor/mathjax.partial
	cd _vendor/mathjax.partial && npm pack --silent mathjax@$(MATHJAX_VERSION) > /dev/null
	tar -xzf _vendor/mathjax.partial/mathjax-$(MATHJAX_VERSION).tgz -C _vendor/mathjax.partial \
		--strip-components=1 $(addprefix package/,$(MATHJAX_PARTS))
	mv _vendor/mathjax.partial/LICENSE _vendor/mathjax.partial/es5/
	mv _vendor/mathjax.partial/es5 _vendor/mathjax
	rm -rf _vendor/mathjax.partial

# The unit tests, then tests/test_book.py: every notebook run by nbmake (quick budget), the
# book built from those outputs and its pages checked (see that file).
test: setup $(MATHJAX)
	$(PY) -m pytest

book: setup $(MATHJAX)
	$(VENV)/bin/jupyter-book build --warningiserror --nitpick --keep-going .

clean:
	rm -rf _build
