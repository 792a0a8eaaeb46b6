# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install compile run test lint typecheck unit bench clean

install: $(STAMP)

# Bytecode is compiled once at install: with PYTHONDONTWRITEBYTECODE set (as on these machines)
# every Ray worker would otherwise recompile ray, scipy and sqlalchemy from source as it starts,
# doubling engine start-up and actor restart times. The project's own modules are compiled before
# every run too (only the changed ones), so no actor process compiles them as it starts.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "aitrader needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

compile: install
	@$(BIN)/python -m compileall -q aitrader actors serve cli

# Market time per wall second of the local exchange, used only when Binance is unreachable (offline,
# paper mode): at 10 the example trader's 1m candles close every 6 s, so signals arrive within a
# minute. Against Binance it has no effect. `make run DEMO_SPEED=1` runs the local market in real time.
DEMO_SPEED ?= 10

run: compile
	$(BIN)/aitrader up --speed $(DEMO_SPEED)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy aitrader

# The whole suite, beside a throw-away PostgreSQL; coverage of aitrader/ held at 80 %.
test: install
	scripts/with-postgres.sh $(MAKE) --no-print-directory lint typecheck unit

unit: compile
	$(BIN)/pytest -p no:cacheprovider --cov=aitrader --cov-report=term --cov-fail-under=80 -q -rs $(PYTEST_ARGS)

bench: compile
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[dev,bench]'
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b | tail -1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
