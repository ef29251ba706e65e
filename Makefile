# Two commands set everything up: `make run` and `make test`. Both create functions/venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := functions/venv
PY := $(CURDIR)/$(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TOOLS := tools/node_modules/.installed-stamp

.PHONY: venv run test lint bench bench-gateway bench-bus clean

$(STAMP): requirements-dev.txt functions/requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

$(TOOLS): tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	@touch $(TOOLS)

venv: $(STAMP)

run: $(STAMP)
	cd functions && $(PY) -m creditflow serve --data-dir "$${CREDITFLOW_DATA_DIR:-$(CURDIR)/.creditflow}" --port "$${CREDITFLOW_PORT:-8080}"

lint: $(STAMP)
	$(PY) -m ruff check .

test: lint $(TOOLS)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/ledger.py
	$(PY) bench/coldstart.py

bench-gateway: $(STAMP)  # installs LiteLLM into bench/.venv-litellm on first use
	$(PY) bench/gateway.py

bench-bus: $(STAMP)
	$(PY) bench/bus.py

clean:
	rm -rf $(VENV) tools/node_modules .pytest_cache .ruff_cache .hypothesis bench/.venv-litellm bench/.venv-functions
