# Every target sets up what it needs: a virtual environment in .venv with the tested versions
# (tools/setup_venv.py: Python 3.11+, the CPU build of torch on Linux without an NVIDIA GPU).
# The newest python3.x on PATH that is 3.11 or newer; `make PYTHON=/path/to/python3.12` picks another.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11; do $$p -c '' 2>/dev/null && echo $$p && exit; done; echo python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

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

clean:
	rm -rf $(VENV) build *.egg-info
