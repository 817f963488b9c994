# The two commands: `make test` (all set-up, then checks and the whole suite) and `make run`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test run check lint typecheck imports compose-check run-deps test-deps python-venv venv bench clean

# Debian packages for the commands that are missing, given as command=package pairs.
apt_ensure = missing=""; \
	for pair in $(1); do \
	  cmd=$${pair%%=*}; command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] \
	    || missing="$$missing $${pair\#*=}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing from the distribution"; \
	  $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

# A Python 3.11+ that can make a virtual environment (Debian splits venv into python3-venv).
python-venv:
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "$(PY) is older than 3.11: install Python 3.11 or newer (Debian 12, Ubuntu 24.04)"; exit 1; }
	@$(PY) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "installing python3-venv from the distribution"; \
	  $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv; }

$(STAMP): pyproject.toml | python-venv
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# What `make run` needs: Mosquitto and InfluxDB. When they were just installed on a machine with
# systemd, the distribution's own services are stopped: this project runs its own.
run-deps:
	@fresh=0; { command -v influxd && { command -v mosquitto || [ -x /usr/sbin/mosquitto ]; }; } \
	  >/dev/null 2>&1 || fresh=1; \
	$(call apt_ensure,mosquitto=mosquitto mosquitto_pub=mosquitto-clients influxd=influxdb); \
	if [ $$fresh = 1 ] && [ -d /run/systemd/system ]; then \
	  echo "stopping the distribution's own mosquitto and influxdb services (this project runs its own)"; \
	  $(SUDO) systemctl disable --now mosquitto influxdb >/dev/null 2>&1 || true; \
	fi

# What the tests need besides: docker-compose (validates the compose file), Chromium (the
# dashboard test) and Alertmanager (the alert tests; `make run` starts one too when installed).
# A freshly installed Alertmanager service is stopped like the servers above (it would hold 9093).
test-deps: run-deps
	@fresh=0; command -v prometheus-alertmanager >/dev/null 2>&1 || fresh=1; \
	$(call apt_ensure,docker-compose=docker-compose chromium=chromium prometheus-alertmanager=prometheus-alertmanager); \
	if [ $$fresh = 1 ] && [ -d /run/systemd/system ]; then \
	  echo "stopping the distribution's own prometheus-alertmanager service (this project runs its own)"; \
	  $(SUDO) systemctl disable --now prometheus-alertmanager >/dev/null 2>&1 || true; \
	fi

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

# The import contracts in pyproject.toml ([tool.importlinter]): fleet/ imports no app, no
# command line, no launcher; no two packages import each other.
imports: venv
	$(BIN)/lint-imports

check: lint typecheck imports

compose-check: test-deps
	docker-compose -f docker-compose.yml config -q
	docker-compose -f docker-compose.yml --profile cluster config -q
	@echo "docker-compose.yml is valid (with and without the cluster profile)"

test: venv test-deps check compose-check
	$(BIN)/pytest $(PYTEST_ARGS)

run: venv run-deps
	$(BIN)/python -m launcher

# The benchmark also needs wrk (the HTTP load generator) and mosquitto_sub (the broker's ceiling).
bench: venv run-deps
	@$(call apt_ensure,wrk=wrk mosquitto_sub=mosquitto-clients)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf .fleet .pytest_cache .mypy_cache .ruff_cache
