# Every target sets up what it needs: a virtual environment in .venv with the tested versions
# (tools/setup_venv.py: Python 3.11+, the CPU build of torch on Linux without an NVIDIA GPU).
# The newest python3.x on PATH that is 3.11 or newer; `make PYTHON=/path/to/python3.12` picks another.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11; do $$p -c '' 2>/dev/null && echo $$p && exit; done; echo python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
# torch's OpenMP threads spin for a bounded while when they wait, then sleep: as fast as spinning on an
# idle laptop, and no collapse when other work wants the cores (bench/results/threads.md). Your own
# GOMP_SPINCOUNT or OMP_WAIT_POLICY wins.
GOMP_SPINCOUNT ?= 100000
export GOMP_SPINCOUNT

.PHONY: install lab test sync badges bench browser-test site slides clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml tools/setup_venv.py
	$(PYTHON) tools/setup_venv.py $(VENV)
	@touch $@

lab: install
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG) $(LAB_ARGS)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Rewrite the badges and setup cells from pyproject.toml, re-pair every notebook (the side edited
# last wins), then strip outputs from the .ipynb files.
sync: install
	$(PY) -m fmcourse.chapters
	$(VENV)/bin/jupytext --sync notebooks/*.py
	$(VENV)/bin/jupyter nbconvert --log-level=WARN --clear-output --inplace notebooks/*.ipynb

badges: sync

bench: install
	$(PY) bench/notebooks.py

# Every notebook in JupyterLab in headless Chromium (needs Debian's chromium, or FMCOURSE_CHROMIUM);
# writes bench/results/browser.md and a screenshot per notebook.
browser-test: install
	$(PY) -m pytest -m browser tests/test_browser.py $(PYTEST_ARGS)

# The whole course as a static site with every output, built offline: build/site/_build/html/index.html
site: install
	$(PY) -m pip install --disable-pip-version-check "jupyter-book==1.0.4.post1"
	$(PY) tools/build_site.py build/site

# Present a chapter: JupyterLab with RISE; open a notebook, then "Render as slideshow" (alt-R).
slides: lab

clean:
	rm -rf $(VENV) build *.egg-info
