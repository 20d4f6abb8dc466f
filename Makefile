# Two entry points: `make quickstart` (set up + run the whole pipeline on the
# embedded synthetic data) and `make test` (set up + run the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MPLBACKEND := Agg
export PYTHONUNBUFFERED := 1

.PHONY: setup quickstart test test-all clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --no-compile --progress-bar off -r requirements.txt
	$(BIN)/pip install --no-compile --no-deps -e .
	touch $@

setup: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/python tools/run_pipeline.py --config configs/quickstart.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs/quickstart
