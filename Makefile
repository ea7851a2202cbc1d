# `make test` and `make book` set themselves up: they create .venv and install the project on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Real offline data for the tests and the reduced-scale runs: Debian's dataset-fashion-mnist.
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: test book complexity install clean data

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

$(FASHION_MNIST):
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null; \
	elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
		echo "Fashion-MNIST is missing: install the Debian package dataset-fashion-mnist, or put the four"; \
		echo "*-idx?-ubyte.gz files in /usr/share/datasets/fashion-mnist"; exit 1; \
	fi

data: $(FASHION_MNIST)

test: $(STAMP) $(FASHION_MNIST)
	$(PY) -m pytest -n 2 --dist loadfile

# Until the notebooks exist, the book's main job is the complexity report of Section 4.
book: $(STAMP)
	mkdir -p _build
	$(VENV)/bin/senet complexity --markdown _build/complexity.md

complexity: $(STAMP)
	$(VENV)/bin/senet complexity

clean:
	rm -rf _build $(VENV)
