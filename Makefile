# The two commands a newcomer needs: `make run` (the service) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test workers: most of a test's time is spent waiting on sockets and subprocesses, so
# more workers than cores pay off (see README, "Tests and benchmarks").
TEST_WORKERS ?= 6

.PHONY: run test demo bench migrate check

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot serve

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

demo: $(STAMP)
	$(BIN)/python -m bot demo

bench: $(STAMP)
	$(BIN)/python -m tests.bench

migrate: $(STAMP)
	$(BIN)/python -m bot migrate

check: $(STAMP)
	$(BIN)/python -m bot check
