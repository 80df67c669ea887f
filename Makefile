# flmon: the two commands are `make demo` and `make test`; each sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := prometheus prometheus-alertmanager prometheus-pushgateway chromium
PYTEST_ARGS ?=

.PHONY: setup system-deps venv demo test lint typecheck unit bench mutation render grafana-schema clean

setup: system-deps venv

# Debian packages: Prometheus (with promtool), AlertManager (with amtool), Pushgateway,
# and Chromium (headless, for the browser test of `flmon report`).
system-deps:
	@if ! command -v promtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null \
	    || ! command -v prometheus-pushgateway >/dev/null || ! command -v chromium >/dev/null; then \
	  echo "installing $(DEB_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES) >/dev/null; \
	fi
	@# The Debian packages start their services; flmon starts its own on loopback ports.
	@for s in prometheus prometheus-alertmanager prometheus-pushgateway; do \
	  ($(SUDO) systemctl disable --now $$s >/dev/null 2>&1 || $(SUDO) service $$s stop >/dev/null 2>&1 || true); \
	done

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

demo: setup
	$(VENV)/bin/flmon demo $(DEMO_ARGS)

lint: venv
	$(VENV)/bin/ruff check flmon tests examples benchmarks
	$(VENV)/bin/mypy

test: setup lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: setup
	$(PY) -m benchmarks.run

# Mutation score of the security-critical modules into docs/testing.md (slow: not part
# of `make test`). MUTATION_ARGS="telemetry labels" measures some modules only.
mutation: venv
	$(PY) -m benchmarks.mutation $(MUTATION_ARGS)

render: venv
	$(VENV)/bin/flmon render --config examples/flmon.yaml --out .
	$(VENV)/bin/flmon metrics --format markdown > docs/metrics.md

# JSON Schemas of Grafana's dashboard and panel types (tests/render/grafana_schema.json),
# generated from the npm package @grafana/schema at the versions pinned in
# hack/grafana/package-lock.json. Needs node and npm; `make test` does not (the schema
# is committed, the tests validate with Python's jsonschema).
grafana-schema:
	cd hack/grafana && npm ci --no-audit --no-fund --ignore-scripts && node generate.mjs

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
