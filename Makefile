# Two commands set everything up: `make run` and `make test`. Both create functions/venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := functions/venv
PY := $(CURDIR)/$(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TOOLS := tools/node_modules/.installed-stamp

.PHONY: venv run cli test lint bench bench-firestore bench-gateway bench-agents bench-bus bench-media clean

$(STAMP): requirements-dev.txt functions/requirements.txt
	@echo "Installing Creditflow's Python packages into $(VENV) (first run, or the requirements changed):" \
	     "about a minute, quiet until it is done..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@start=$$(date +%s); $(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt && \
	  echo "Installed in $$(( $$(date +%s) - start )) s."
	@touch $(STAMP)

$(TOOLS): tools/package.json tools/package-lock.json
	@echo "Installing the Node tools the tests use into tools/node_modules (first run: a minute or two)..."
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	@touch $(TOOLS)

venv: $(STAMP)

run: $(STAMP)
	./creditflow serve --data-dir "$${CREDITFLOW_DATA_DIR:-$(CURDIR)/.creditflow}" --port "$${CREDITFLOW_PORT:-8080}"

cli: $(STAMP)  # the command line, e.g. make cli ARGS="ledger audit" (or ./creditflow ledger audit)
	./creditflow $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

test: lint $(TOOLS)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/ledger.py
	$(PY) bench/coldstart.py
	$(PY) bench/firestore.py

bench-firestore: $(STAMP)  # document reads and writes per operation, on Google's Firestore emulator
	$(PY) bench/firestore.py

bench-gateway: $(STAMP)  # installs LiteLLM into bench/.venv-litellm on first use
	$(PY) bench/gateway.py

bench-agents: $(STAMP)  # what checkpointing each agent superstep on SQLite costs, beside no checkpointer
	$(PY) bench/agents.py

bench-bus: $(STAMP)  # the durable queue: jobs per second, enqueue-to-start latency
	$(PY) bench/bus.py

bench-media: $(STAMP)  # thumbnails per second and peak memory for 1024² and 2048² originals
	$(PY) bench/media.py

clean:
	rm -rf $(VENV) tools/node_modules .pytest_cache .ruff_cache .hypothesis bench/.venv-litellm bench/.venv-functions
