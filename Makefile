# `make test` and `make book` set themselves up: they create .venv and install the project on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test book complexity install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

# Until the notebooks exist, the book's main job is the complexity report of Section 4.
book: $(STAMP)
	mkdir -p _build
	$(VENV)/bin/senet complexity --markdown _build/complexity.md

complexity: $(STAMP)
	$(VENV)/bin/senet complexity

clean:
	rm -rf _build $(VENV)
