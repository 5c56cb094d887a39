# One command per task. `make run` and `make test` do all set-up on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
SAMPLE_COUNT ?= 1000
SAMPLE_SEED ?= 1
export ALPHANODE_DATABASE_URL ?= sqlite:///alphanode.db

.PHONY: run test install audit-deps sample lint typecheck check schema bench bench-peer-deps bench-peers clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

var/sample/.done: | $(BIN)/.installed
	$(BIN)/alphanode generate --count $(SAMPLE_COUNT) --seed $(SAMPLE_SEED) --out var/sample --quiet
	touch $@

sample: var/sample/.done

# Create the store, import the sample document and the synthesized posts (a no-op
# when they are already there), then serve GraphQL with GraphiQL.
run: install sample
	$(BIN)/alphanode init
	$(BIN)/alphanode import --quiet samples var/sample
	$(BIN)/alphanode serve --host $(HOST) --port $(PORT)

# The GraphQL-over-HTTP audit's npm packages (tests/audit/package-lock.json), installed again
# only when the lock changes. Without npm the audit test fails and says why; the rest still runs.
AUDIT := tests/audit
$(AUDIT)/node_modules/.installed: $(AUDIT)/package.json $(AUDIT)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(AUDIT) --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "npm not found: the GraphQL-over-HTTP audit (tests/audit) will fail; install Node.js 18+ and npm" >&2; \
	fi

audit-deps: $(AUDIT)/node_modules/.installed

# The whole suite, after the lint, the format and the type check: any of them failing fails it.
test: install audit-deps bench-peer-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

schema: install
	$(BIN)/alphanode export-schema

# The benchmark suite (bench/README.md): 100,000 posts on SQLite and PostgreSQL, wrk on
# loopback, results in bench/results/. BENCH_ARGS=--quick for a smoke run.
bench: install bench-peer-deps
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# PostGraphile v4, the peer measured beside the API (bench/postgraphile/package-lock.json), installed
# again only when the lock changes. Without npm, bench.peers and tests/bench/test_peer_live.py stop and
# say why; bench.run and the other tests still run.
PEER := bench/postgraphile
$(PEER)/node_modules/.installed: $(PEER)/package.json $(PEER)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(PEER) --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "npm not found: the side-by-side run with PostGraphile (bench.peers) needs Node.js 18+ and npm" >&2; \
	fi

bench-peer-deps: $(PEER)/node_modules/.installed

# This API, the hand-written endpoint and PostGraphile on one PostgreSQL store (bench/README.md,
# "Beside PostGraphile"): 20,000 posts. PEERS_ARGS=--quick for a smoke run.
bench-peers: install bench-peer-deps
	$(BIN)/python -m bench.peers $(PEERS_ARGS)

clean:
	rm -rf var alphanode.db alphanode.db-wal alphanode.db-shm .pytest_cache .mypy_cache .ruff_cache
