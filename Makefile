# Two commands set everything up: `make run` and `make test`. Both create functions/venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := functions/venv
PY := $(CURDIR)/$(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv run test lint bench clean

$(STAMP): requirements-dev.txt functions/requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	cd functions && $(PY) -m creditflow serve --data-dir $(CURDIR)/.creditflow

lint: $(STAMP)
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/ledger.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
