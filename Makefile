# One entry point for everything: `make demo` and `make test` install what they need first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-slow lint bench clean sample

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@# Debian's chromium for the review app's browser tests (skipped, with a reason, without it)
	@command -v chromium >/dev/null 2>&1 || apt-get install -y -qq chromium >/dev/null 2>&1 \
		|| (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
		|| echo "chromium not installed: the browser tests will be skipped"
	touch $(STAMP)

install: $(STAMP)

## Run the nightly job over the committed sample (three nights of extracts).
demo: $(STAMP)
	$(BIN)/linkage demo --config sample_data/project.yaml

## The test suite (slow scale tests excluded; `make test-slow` runs them), one worker per
## core (pytest-xdist): each worker has its own Prefect test API and session fixtures.
test: $(STAMP)
	$(BIN)/ruff check linkage flows tests benchmarks
	$(BIN)/pytest -q -n auto

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check linkage flows tests benchmarks
	$(BIN)/mypy linkage flows

## Whole nights on ~1M records (default and low name diversity), stage by stage, against
## plain Splink; populations cached in benchmarks/cache/. Quick run: make bench BENCH="--people 20000"
bench: $(STAMP)
	$(BIN)/python benchmarks/night_bench.py $(BENCH)

## Regenerate the committed sample population (deterministic for the seed); it keeps its own
## project.yaml (pointing at schemas/), so no config/ folder is written into it.
sample: $(STAMP)
	$(BIN)/linkage generate --people 3000 --seed 20261101 --nights 3 --out sample_data --no-write-config

clean:
	rm -rf $(VENV) warehouse output .pytest_cache
