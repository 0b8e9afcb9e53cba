# openflix — the README's two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench bench-scale bench-api bench-cdn clean

# (Re)create the virtual environment whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "openflix needs Python 3.11 or newer"' \
		|| { echo "error: $(PYTHON) is older than 3.11; run: make PYTHON=python3.11 ..." >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/openflix demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# Side-by-side benchmarks against implicit and scikit-surprise; writes docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,peers]'
	$(BIN)/python benchmarks/recs.py

bench-scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py

# Home endpoint latency in process and throughput behind Gunicorn under wrk (apt-get install wrk).
bench-api: $(STAMP)
	$(BIN)/python benchmarks/api.py

# Steering decisions/s and fill plan time; the offload replay of ML-100K (read from ../shared/data/ml-100k
# or --data; never bundled) with every fill policy side by side, and its plot docs/offload.png.
bench-cdn: $(STAMP)
	$(BIN)/python benchmarks/cdn.py
	$(BIN)/python benchmarks/offload.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
