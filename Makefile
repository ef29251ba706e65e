# Two commands set everything up: `make run` and `make test`. Both create functions/venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := functions/venv
PY := $(CURDIR)/$(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TOOLS := tools/node_modules/.installed-stamp
WEB_MODULES := web/node_modules/.installed-stamp
WEB_BUILT := web/dist/index.html
WEB_SOURCES := $(wildcard web/src/*.js web/src/*.jsx web/src/pages/*.jsx) web/build.mjs web/index.html \
	web/admin.html web/styles.css

.DEFAULT_GOAL := all
.PHONY: all venv web chromium run cli test test-setup lint typecheck bench bench-firestore bench-gateway bench-agents bench-bus bench-media bench-payments bench-web clean

all: venv web  # `make`: the Python packages, and the web app built into web/dist

$(STAMP): requirements-dev.txt functions/requirements.txt
	@# as for tools/ and web/: a link to a venv shared by several checkouts is left alone (pip would change it under
	@# the others' runs)
	@if [ -L $(VENV) ]; then \
	  echo "$(VENV) links to a shared venv ($$(readlink $(VENV))): not installing into it"; \
	else \
	  echo "Installing Creditflow's Python packages into $(VENV) (first run, or the requirements changed):" \
	       "about a minute, quiet until it is done..."; \
	  test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	  start=$$(date +%s); $(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt && \
	    echo "Installed in $$(( $$(date +%s) - start )) s." && touch $(STAMP); \
	fi

$(TOOLS): tools/package.json tools/package-lock.json
	@# a link to an install shared by several checkouts is left alone: npm ci would empty it under the others
	@if [ -L tools/node_modules ]; then \
	  echo "tools/node_modules links to a shared install ($$(readlink tools/node_modules)): not reinstalling it"; \
	else \
	  echo "Installing the Node tools the tests use into tools/node_modules (first run: a minute or two)..."; \
	  cd tools && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed-stamp; \
	fi

$(WEB_MODULES): web/package.json web/package-lock.json
	@# as for tools/: a link to an install shared by several checkouts is left alone (npm ci would empty it)
	@if [ -L web/node_modules ]; then \
	  echo "web/node_modules links to a shared install ($$(readlink web/node_modules)): not reinstalling it"; \
	else \
	  echo "Installing the web app's npm packages into web/node_modules (first run: a minute or so)..."; \
	  cd web && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed-stamp; \
	fi

$(WEB_BUILT): $(WEB_MODULES) $(WEB_SOURCES)
	cd web && node build.mjs

venv: $(STAMP)

web: $(WEB_BUILT)  # the client app and admin console, bundled by esbuild into web/dist (served at /)

chromium:  # Debian's Chromium for the browser tests, installed when missing and we are root (else they skip)
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi

run: $(STAMP) $(WEB_BUILT)
	./creditflow serve --data-dir "$${CREDITFLOW_DATA_DIR:-$(CURDIR)/.creditflow}" --port "$${CREDITFLOW_PORT:-8080}"

cli: $(STAMP)  # the command line, e.g. make cli ARGS="ledger audit" (or ./creditflow ledger audit)
	./creditflow $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

typecheck: $(STAMP)  # mypy over functions/creditflow, settings in pyproject.toml (pydantic's plugin on)
	$(PY) -m mypy

# Test processes (pytest-xdist): most tests wait on servers and sockets, so two share two cores well.
TEST_WORKERS ?= 2

test:  # what the tests need is installed side by side (pip, and npm twice: each mostly waits), then the tests
	@$(MAKE) --no-print-directory -j4 test-setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

test-setup: lint typecheck $(TOOLS) $(WEB_BUILT) chromium

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

bench-media: $(STAMP)  # thumbnails per second and peak memory (1024², 2048²); an image task's overhead
	$(PY) bench/media.py

bench-payments: $(STAMP) $(TOOLS)  # Stripe webhook events/s (one sender, twenty: no double grants); the chain scanner on anvil
	$(PY) bench/payments.py

bench-web: $(STAMP) $(WEB_BUILT) chromium  # bundle sizes, spend-to-repaint and cold-load times in Chromium
	$(PY) bench/web.py

clean:
	rm -rf $(VENV) tools/node_modules web/node_modules web/dist .pytest_cache .ruff_cache .hypothesis bench/.venv-litellm bench/.venv-functions
