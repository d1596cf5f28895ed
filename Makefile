# Two commands on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint bench clean mutate

$(STAMP): pyproject.toml
	@echo "== bootstrapping $(VENV) (first run: a few minutes) =="
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev]' > $(VENV)/install.log 2>&1 || { tail -n 40 $(VENV)/install.log; exit 1; }
	$(BIN)/python -c "import harness, tensorflow, ray, mlflow, tensorflow_datasets" \
		>> $(VENV)/install.log 2>&1 || { tail -n 40 $(VENV)/install.log; exit 1; }
	touch $(STAMP)

# Real MNIST for the demo: the official archives in MNIST_DIR when present, else a download.
MNIST_DIR ?= ../shared/datasets/mnist

demo: $(STAMP)
	$(BIN)/harness data prepare mnist $(if $(wildcard $(MNIST_DIR)/train-images-idx3-ubyte.gz),--from $(MNIST_DIR))
	$(BIN)/harness run search_spaces/smoke.yaml
	$(BIN)/harness analyze smoke

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check harness tests benchmarks

# Mutation testing, not in CI (README, "Development: mutation testing"): mutmut mutates one
# module or package, runs the fast tests that import it against each mutant and prints the score
# (tests/mutate.py). MODULE=harness/study/tuning.py (or MODULE=harness/analysis); no MODULE: every
# file [tool.mutmut] in pyproject.toml lists, against the whole fast tier. MUTATE_TESTS: other
# pytest args choosing the tests ("tests": the fast tier); MUTATE_SAMPLE=K: K mutants drawn by
# random.Random(2026). Results stay in mutants/; `mutmut show NAME` prints a mutant.
MODULE ?=
MUTATE_JOBS ?= 2
MUTATE_TESTS ?=
MUTATE_SAMPLE ?= 0
mutate: $(STAMP)
	$(BIN)/python tests/mutate.py '$(MODULE)' --jobs $(MUTATE_JOBS) --tests '$(MUTATE_TESTS)' \
		--sample $(MUTATE_SAMPLE)

clean:
	rm -rf $(VENV) .pytest_cache mutants
