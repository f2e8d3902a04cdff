# Two targets are the quick start: `make run` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= examples/waygps.toml

.PHONY: run test venv lint clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,test,fast]'
	touch $@

venv: $(BIN)/.installed

run: venv
	$(BIN)/twistd --nodaemon --pidfile= --reactor waygps waygps --config $(CONFIG)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/pip install --quiet ruff
	$(BIN)/ruff check src tests twisted benchmarks examples

clean:
	rm -rf $(VENV) var build src/*.egg-info
