# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
MEDLAKE_HOME ?= $(CURDIR)/medlake-data
export DAGSTER_HOME ?= $(abspath $(MEDLAKE_HOME))/dagster

.PHONY: venv demo test bench ui clean browser

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

## make demo: synthesise a small programme, run everything, print where to look
demo: venv
	MEDLAKE_HOME=$(MEDLAKE_HOME) $(BIN)/medlake demo

## make test: the whole test suite (real Delta tables, DuckDB, DICOM files, Dagster runs, Chromium)
test: venv browser
	$(BIN)/python -m pytest -q

# The dashboard test drives Debian's Chromium headless; CJK fonts so the Chinese names render.
browser:
	@command -v chromium >/dev/null && fc-list 2>/dev/null | grep -qi "noto sans cjk" || { \
	  echo "installing chromium and fonts-noto-cjk (the dashboard test needs them)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }

## make bench: benchmarks against same-run baselines; results land in bench/results/
bench: venv
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python -m bench

## make ui: Dagster's UI and daemon (sensors, schedules) on http://127.0.0.1:3000
ui: venv
	umask 077; mkdir -p $(DAGSTER_HOME); chmod 700 $(DAGSTER_HOME)
	test -f $(DAGSTER_HOME)/dagster.yaml || printf 'telemetry:\n  enabled: false\n' > $(DAGSTER_HOME)/dagster.yaml
	umask 077; MEDLAKE_HOME=$(MEDLAKE_HOME) $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean:
	rm -rf $(VENV) medlake-data bench/work
