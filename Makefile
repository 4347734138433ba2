# Every target sets up what it needs: a virtual environment in .venv with the tested versions.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: install lab test sync bench clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "fmcourse needs Python 3.10 or newer; this is " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -e .
	@touch $@

lab: install
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG) $(LAB_ARGS)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Re-pair every notebook (the side edited last wins), then strip outputs from the .ipynb files.
sync: install
	$(VENV)/bin/jupytext --sync notebooks/*.py
	$(VENV)/bin/jupyter nbconvert --log-level=WARN --clear-output --inplace notebooks/*.ipynb

bench: install
	$(PY) bench/notebooks.py

clean:
	rm -rf $(VENV) build *.egg-info
