# The two front-door commands live here: `make demo` and `make test` (see README.md).
# Everything they need is installed on first use, so a fresh clone needs only python3, go and make.
VENV ?= .venv
# Two distributions: the operator (pyproject.toml) and its local stand-ins + demo
# (tests/standins-pkg/pyproject.toml, console script `retraining-standins`).
STANDINS := tests/standins-pkg
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup lint typecheck test demo envtest clean

$(VENV)/.installed: pyproject.toml $(STANDINS)/pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -e $(STANDINS)
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

# Builds (or reuses from ~/.cache) a real kube-apiserver + etcd; prints the assets dir last.
envtest:
	bash tests/envtest/build.sh

test: setup lint typecheck
	KUBEBUILDER_ASSETS="$$(bash tests/envtest/build.sh | tail -n 1)" $(BIN)/pytest
	@echo "== demo smoke run =="
	KUBEBUILDER_ASSETS="$$(bash tests/envtest/build.sh | tail -n 1)" $(BIN)/retraining-standins demo

# The main job: the whole loop on local stand-ins (real kube-apiserver, emulated AWS).
demo: setup
	KUBEBUILDER_ASSETS="$$(bash tests/envtest/build.sh | tail -n 1)" $(BIN)/retraining-standins demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist $(STANDINS)/.ruff_cache $(STANDINS)/*.egg-info
