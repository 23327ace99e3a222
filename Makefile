# Two commands: `make demo` and `make test`. Both create .venv on their own; re-running is cheap.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export KERAS_BACKEND ?= torch
export MPLBACKEND ?= Agg

.PHONY: demo test bench install clean lint

demo: $(STAMP)
	$(VENV)/bin/lrdoctor demo --out demo-out

test: $(STAMP)
	$(PY) -m pytest -q -n 2 -p no:cacheprovider

bench: $(STAMP)
	$(PY) benchmarks/run.py $(BENCH)

install: $(STAMP)

# The stamp depends on what decides the environment, so editing them re-installs.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt "torch==2.13.0"
	$(PIP) install -q -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks examples

clean:
	rm -rf $(VENV) demo-out .pytest_cache
