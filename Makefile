# `make test` and `make book` set themselves up: they create .venv and install the project on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Real offline data for the tests and the reduced-scale runs: Debian's dataset-fashion-mnist.
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# The browser tests/test_browser.py drives through Playwright: Debian's chromium (Playwright's own
# browser downloads are not used).
CHROMIUM := /usr/bin/chromium

.PHONY: test book smoke complexity install clean data browser colab constraints

# PyPI's torch is the CUDA build: about 6 GB installed, and pip holds about 2.6 GB of downloads while it
# runs; `make test` then builds a second, Colab-like environment of about 6 GB (_build/colab). A first
# install refuses early, with the numbers, rather than fail half-way with a full disk.
INSTALL_NEEDS_GB ?= 15

# The exact versions installed are those of constraints.txt (pyproject.toml holds lower bounds only).
$(STAMP): pyproject.toml constraints.txt
	@dir=$$(dirname "$(VENV)"); while [ ! -d "$$dir" ]; do dir=$$(dirname "$$dir"); done; \
	free=$$(df -Pk "$$dir" | awk 'NR == 2 {print int($$4 / 1048576)}'); \
	if [ ! -d "$(VENV)" ] && [ "$$free" -lt $(INSTALL_NEEDS_GB) ]; then \
		echo "Not enough disk to install: $$free GB free under $$dir, about $(INSTALL_NEEDS_GB) GB needed"; \
		echo "(torch's CUDA wheels from PyPI). Free some space, or point VENV= at a larger disk."; \
		exit 1; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,book]"
	touch $(STAMP)

install: $(STAMP)

# Rewrite constraints.txt from what .venv holds now (its header, the lines above `# ---`, is kept).
constraints:
	@test -x $(PY) || { echo "no $(VENV): run make install first"; exit 1; }
	{ sed -n '/^# ---/q;p' constraints.txt; echo '# ---'; \
	  $(PY) -m pip freeze --exclude-editable | grep -v -i '^senet[-_]core=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

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

$(CHROMIUM):
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; \
	elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "Chromium is missing: install the Debian package chromium (the browser tests/test_browser.py"; \
		echo "drives expects it at $(CHROMIUM))"; exit 1; \
	fi

browser: $(CHROMIUM)

# The book: execute every chapter with papermill (PROFILE=cpu|smoke|gpu), then build the HTML from the
# executed copies into _build/html, Sphinx warnings treated as errors. The published book is the cpu
# profile: the committed records of our reduced-scale study, read back (what is missing is trained).
PROFILE ?= cpu
SITE    := _build/site

MATHJAX := $(SITE)/_mathjax/mathjax/tex-chtml.js

# MathJax served with the book (it would otherwise come from a CDN), fetched from the npm registry. It
# lives outside _static/, whose scripts Jupyter Book adds to every page; Sphinx copies it into _static.
$(MATHJAX):
	rm -rf _build/mathjax && mkdir -p _build/mathjax $(SITE)/_mathjax/mathjax
	cd _build/mathjax && npm pack mathjax@3.2.2 --silent >/dev/null && tar xzf mathjax-3.2.2.tgz
	cp -r _build/mathjax/package/es5/. $(SITE)/_mathjax/mathjax/

book: $(STAMP) $(FASHION_MNIST) $(MATHJAX)
	$(VENV)/bin/senet reproduce --profile $(PROFILE) --jobs 2 --out $(SITE)/notebooks
	rm -rf $(SITE)/book && cp -r book _config.yml _toc.yml $(SITE)/
	$(VENV)/bin/senet report --headline --profile $(if $(filter gpu,$(PROFILE)),gpu,cpu) --out $(SITE)/book/headline.md
	$(VENV)/bin/jupyter-book build $(SITE) --path-output . -W -n --quiet

# Every chapter executed with the smoke profile (tiny data, one epoch): the training paths run.
smoke: $(STAMP) $(FASHION_MNIST)
	$(VENV)/bin/senet reproduce --profile smoke --jobs 2 --out _build/smoke

# Unit tests, then nbval over every stored notebook (cells tagged nbval-check-output compared strictly:
# the committed results among them), and the built book's HTML checked by tests/test_book_html.py and,
# in headless Chromium, by tests/test_browser.py (screenshots of every page in _build/screenshots).
test: $(STAMP) $(FASHION_MNIST) $(CHROMIUM) book smoke
	$(PY) -m pytest -n 2 --dist loadfile --nbval-lax --nbval-sanitize-with $(CURDIR)/nbval_sanitize.cfg tests notebooks

# Slow, not part of `make test`: every chapter as a Colab reader runs it, alone in an empty folder, in a
# fresh virtual environment holding only what Colab ships (torch, torchvision, numpy, pandas, ...), its
# install cell installing senet-core from a wheel of this checkout (tests/colab_sim.py; _build/colab).
# Prints each chapter's outcome and time; tests/test_colab.py does the same for chapter 01 alone.
colab: $(STAMP)
	$(PY) tests/colab_sim.py --all

complexity: $(STAMP)
	$(VENV)/bin/senet complexity

clean:
	rm -rf _build $(VENV)
