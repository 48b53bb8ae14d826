# make run: serve the API on 127.0.0.1:8000.  make test: run the test suite.
# make test-fast: the suite without the tests marked live (those that start servers).
# make bench: measure the hot endpoints (see bench/run.py).
# Each creates .venv, installs requirements, and starts local MariaDB / Redis when
# the configured ones do not answer.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
SOURCES := app.py codes.py errors.py api.py blueprints schemas services models
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)

.PHONY: run test test-fast setup services translations chromium extract-messages lint bench

run: setup services translations
	$(BIN)/flask --app app sync-schema --yes
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: setup services translations chromium
	$(BIN)/pytest

test-fast: setup services translations
	$(BIN)/pytest -m "not live" -n 2

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -m venv $(VENV) || { echo "[setup] installing python3-venv"; \
		$(SUDO) apt-get install -y -q python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

services: setup
	$(BIN)/python scripts/ensure_services.py

# The start compiles a missing or stale catalog too (catalogs.py); this only does it early.
translations: setup
	$(BIN)/pybabel compile -d translations

# Every hot endpoint against a bare-Flask ceiling, same gunicorn settings, one run
# (bench/run.py; about 8 minutes). Needs Debian's wrk: installed here when missing.
bench: setup services translations
	@command -v wrk >/dev/null || { echo "[bench] installing Debian package wrk"; \
		$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; }
	$(BIN)/python bench/run.py

# tests/test_docs_page.py renders /api/docs in Debian's chromium (driven by Playwright, which never
# downloads a browser of its own): installed here when missing. make test-fast leaves that test out.
chromium:
	@command -v chromium >/dev/null || { echo "[test] installing Debian package chromium"; \
		$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# For developers changing messages: refresh the catalog, translate, commit the .po.
extract-messages: setup
	$(BIN)/pybabel extract -F babel.cfg -k _l -o translations/messages.pot $(SOURCES)
	$(BIN)/pybabel update -i translations/messages.pot -d translations

lint: setup
	$(BIN)/ruff check .
	$(BIN)/python scripts/import_cycles.py
