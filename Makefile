# Tidemill — every target sets up what it needs. `make help` lists them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The dashboard and GraphiQL (web/, Vite) build into the package: schema/static/.
WEB_BUILD := schema/static/index.html
WEB_MODULES := web/node_modules/.package-lock.json
WEB_MANIFEST := web/src/generated/queries.json
WEB_SOURCES := $(shell find web/src web/public -type f -not -path '*/generated/*' 2>/dev/null) \
	web/index.html web/graphiql.html web/vite.config.ts web/tsconfig.json
CHROMIUM := /usr/bin/chromium
SCREENSHOTS := overview-desktop.png overview-phone.png overview-breakdown-quarterly.png \
	movements.png customer.png cohorts-desktop.png trials-desktop.png churn-desktop.png \
	usage.png usage-composite-by-country.png customer-usage.png access-partner.png graphiql.png

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install Tidemill with its dev tools

$(WEB_MODULES): web/package.json web/package-lock.json
	@command -v npm >/dev/null || { echo "the dashboard's build needs Node.js 20+ and npm"; exit 1; }
	cd web && npm ci --no-audit --no-fund

$(WEB_MANIFEST): $(STAMP) $(wildcard queries/*.graphql) app/security/persisted.py app/security/manifest.py
	$(BIN)/python -m app.security.manifest $@

$(WEB_BUILD): $(WEB_MODULES) $(WEB_MANIFEST) $(WEB_SOURCES)
	cd web && npx tsc --noEmit && npx vite build --logLevel warn

web: $(WEB_BUILD) ## Build the dashboard and GraphiQL (npm ci + vite build) into schema/static

$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq chromium

chromium: $(CHROMIUM) ## Install Debian's chromium (the browser tests drive it)

web-test: $(WEB_MODULES) $(WEB_MANIFEST) ## Unit tests of the dashboard's own logic (Vitest)
	cd web && npx vitest run

demo: $(STAMP) web ## Load the demo company into the embedded PostgreSQL and serve it on :8000
	$(BIN)/tidemill demo

serve: $(STAMP) web ## Serve the dashboard and GraphQL on :8000 (TIDEMILL_DATABASE_URL or embedded)
	$(BIN)/tidemill serve

# pytest runs the test files side by side, one worker per core (pytest-xdist): a file's tests
# stay together on one worker, and each worker has its own database. TEST_WORKERS=0: one process.
TEST_WORKERS ?= auto
test: $(STAMP) web chromium web-test ## Run every test: Vitest, then pytest (browser tests included)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP) ## ruff and mypy --strict (every package, tests included)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .  # every package: app connectors resolvers schema bench migrations tests

check: lint test ## Everything CI runs

schema: $(STAMP) ## Regenerate schema.graphql from the Strawberry schema
	$(BIN)/python -m schema.export

bench: $(STAMP) web chromium ## Benchmark import, queries and the dashboard; 10k and 100k side by side
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.sizes --customers 10000 100000 --prefix tidemill_bench_sizes
	$(BIN)/python -m bench.plans --customers 10000 100000 --prefix tidemill_bench_sizes --reuse

bench-plans: $(STAMP) ## Rollup against scan, side by side at 10k and 100k customers
	$(BIN)/python -m bench.plans --customers 10000 100000

bench-1m: $(STAMP) ## 10k, 100k and 1,000,000 customers side by side, then rollup against scan at 1M
	$(BIN)/python -m bench.sizes --customers 10000 100000 1000000 --prefix tidemill_bench_sizes
	$(BIN)/python -m bench.plans --customers 1000000 --runs 3 --prefix tidemill_bench_sizes --reuse

bench-scale: $(STAMP) ## Imports (whole vs chunked), GraphQL vs bare SQL, 10 clients' throughput
	$(BIN)/python -m bench.scale

screenshots: $(STAMP) web chromium ## Refresh docs/screenshots/ from the browser tests' pictures
	$(BIN)/python -m pytest -q -p no:randomly tests/test_dashboard.py
	mkdir -p docs/screenshots
	cp $(addprefix tests/artifacts/,$(SCREENSHOTS)) docs/screenshots/

.PHONY: help install web chromium web-test demo serve test lint check schema bench bench-plans bench-1m bench-scale \
	screenshots
