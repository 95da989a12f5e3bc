# The two commands a fresh machine needs: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck check bench soak mutation chaos contract catalogue clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hexavox demo

test: $(STAMP)
	$(BIN)/pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check worker tasks providers schema api tests

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python tests/bench/run.py
	$(BIN)/python tests/bench/campaign.py
	$(BIN)/python tests/bench/http_api.py

# The long runs (30-40 min here): worker RSS over a 200,000-member campaign and 20,000 single TXN jobs, and the
# reconcile sweep at 1,000 / 10,000 / 100,000 AMBIGUOUS (docs/performance.md).
soak: $(STAMP)
	$(BIN)/python tests/bench/soak.py
	$(BIN)/python tests/bench/reconcile.py

# Mutation testing of the money and rule modules, each against its own fast tests (docs/mutation.md).
# MODULES="quota phone" picks some; MUTATION_JOBS=N runs N mutants at once (default 1: the cores are shared).
mutation: $(STAMP)
	$(BIN)/python tests/mutation/run.py $(MODULES)

# The fault suite on private servers (1,000 messages per scenario; ~20 min); `make test` runs its short form.
chaos: $(STAMP)
	$(BIN)/python tests/chaos/run.py

contract: $(STAMP)
	$(BIN)/hexavox contract --write schema/contract

catalogue: $(STAMP)
	$(BIN)/hexavox catalogue --markdown

clean:
	rm -rf $(VENV) .hexavox .pytest_cache .mypy_cache .ruff_cache .mutation
