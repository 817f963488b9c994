# The two commands: `make test` (all set-up, then checks and the whole suite) and `make run`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := mosquitto mosquitto-clients influxdb docker-compose chromium

.PHONY: test run check lint typecheck compose-check servers venv bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's packages, installed only when a binary is missing.
servers:
	@missing=0; \
	for b in mosquitto mosquitto_pub influxd docker-compose chromium; do \
	  command -v $$b >/dev/null 2>&1 || [ -x /usr/sbin/$$b ] || missing=1; \
	done; \
	if [ $$missing = 1 ]; then \
	  echo "installing $(APT_PACKAGES) from the distribution"; \
	  $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $(APT_PACKAGES); \
	  if [ -d /run/systemd/system ]; then \
	    echo "stopping the distribution's own mosquitto and influxdb services (this project runs its own)"; \
	    $(SUDO) systemctl disable --now mosquitto influxdb >/dev/null 2>&1 || true; \
	  fi; \
	fi

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

check: lint typecheck

compose-check: servers
	docker-compose -f docker-compose.yml config -q
	@echo "docker-compose.yml is valid"

test: venv servers check compose-check
	$(BIN)/pytest $(PYTEST_ARGS)

run: venv servers
	$(BIN)/python -m fleet.run

bench: venv servers
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench

clean:
	rm -rf .fleet .pytest_cache .mypy_cache .ruff_cache
