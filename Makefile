# Two commands from a fresh clone:  `make demo`  and  `make test`.
# Both create .venv once (CPU torch first, then the package with its dev extras);
# a second run finds the stamp file and installs nothing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nrf-installed
TORCH_PIN := torch==2.13.0
DATA_DIR ?= $(if $(NRF_DATA_DIR),$(NRF_DATA_DIR),$(wildcard ../shared/data))
PYTEST_ARGS ?=
LINT_DIRS := src tests $(wildcard benchmarks/*.py)

.PHONY: demo test test-fast lint format bench clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nrf demo --out runs/demo $(if $(OVERWRITE),--overwrite)

# pytest exits 5 when it collects no test; that is not a failure of the code.
test: $(STAMP)
	NRF_DATA_DIR="$(DATA_DIR)" $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix $(LINT_DIRS)
	$(BIN)/ruff format $(LINT_DIRS)

bench: $(STAMP)
	@echo "benchmarks arrive with the sampler and method issues: $(BIN)/nrf bench --help"

clean-venv:
	rm -rf $(VENV)
