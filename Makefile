# Two entry points: `make quickstart` (set up + run the whole pipeline on the
# embedded synthetic data) and `make test` (set up + run the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VOT_VENV := .venv-vot
VOT_STAMP := $(VOT_VENV)/.installed
export MPLBACKEND := Agg
export PYTHONUNBUFFERED := 1

.PHONY: setup vot-venv quickstart real nanotrack test benchmark clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --no-compile --progress-bar off -r requirements.txt
	$(BIN)/pip install --no-compile --no-deps -e .
	touch $@

# The VOT toolkit in its own venv (pins that work offline; 0.9.0 breaks multistart).
$(VOT_STAMP):
	$(PYTHON) -m venv $(VOT_VENV)
	$(VOT_VENV)/bin/pip install --no-compile --progress-bar off vot-toolkit==0.7.4 vot-trax==4.0.2 attributee==0.1.9
	touch $@

setup: $(STAMP)

vot-venv: $(VOT_STAMP)

quickstart: $(STAMP)
	$(BIN)/python tools/run_pipeline.py --config configs/quickstart.yaml

real: $(STAMP)
	$(BIN)/python tools/run_pipeline.py --config configs/real.yaml

nanotrack: $(STAMP)
	$(BIN)/python tools/run_pipeline.py --config configs/nanotrack/compress.yaml

test: $(STAMP) $(VOT_STAMP)
	$(BIN)/python -m pytest -q --durations=12   # the slowest tests, to keep the suite under 10 minutes

benchmark: $(STAMP)
	$(BIN)/python tools/benchmark.py --out runs/benchmark --threads 2

clean:
	rm -rf runs/quickstart
