# Tidemill — every target sets up what it needs. `make help` lists them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install Tidemill with its dev tools

demo: $(STAMP) ## Load the demo company into the embedded PostgreSQL and serve GraphQL on :8000
	$(BIN)/tidemill demo

serve: $(STAMP) ## Serve GraphQL on :8000 (TIDEMILL_DATABASE_URL or the embedded database)
	$(BIN)/tidemill serve

test: $(STAMP) ## Run the whole test suite (TIDEMILL_TEST_DATABASE_URL or an embedded server)
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff and mypy --strict (every package, tests included)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .  # every package: app connectors resolvers schema bench migrations tests

check: lint test ## Everything CI runs

schema: $(STAMP) ## Regenerate schema.graphql from the Strawberry schema
	$(BIN)/python -m schema.export

bench: $(STAMP) ## Benchmark import and query latency on 10,000 generated customers
	$(BIN)/python -m bench.run

.PHONY: help install demo serve test lint check schema bench
