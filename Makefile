# The two front-door commands live here: `make demo` and `make test` (see README.md).
# Everything they need is installed on first use, so a fresh clone needs only python3, go and make.
VENV ?= .venv
# Two distributions: the operator (pyproject.toml) and its local stand-ins + demo
# (tests/standins-pkg/pyproject.toml, console script `retraining-standins`).
STANDINS := tests/standins-pkg
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup lint typecheck test demo envtest clean lock dashboard admission

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
	KUBEBUILDER_ASSETS="$$(bash tests/envtest/build.sh | tail -n 1)" \
		PROMTOOL="$$(bash tests/promtool/build.sh | tail -n 1)" $(BIN)/pytest
	@echo "== demo smoke run =="
	KUBEBUILDER_ASSETS="$$(bash tests/envtest/build.sh | tail -n 1)" $(BIN)/retraining-standins demo

# The main job: the whole loop on local stand-ins (real kube-apiserver, emulated AWS).
demo: setup
	KUBEBUILDER_ASSETS="$$(bash tests/envtest/build.sh | tail -n 1)" $(BIN)/retraining-standins demo

# The image's runtime dependencies (requirements.lock) and the build backend that makes the
# operator's wheel (requirements-build.lock), pinned with hashes for the image's platform (the
# Dockerfile's Python on linux x86_64), and the chart's CycloneDX SBOM of the runtime set
# (docs/packaging.md).
# Keeps the pins already in the lock; `make lock LOCK_FLAGS=--upgrade` moves them to the newest.
IMAGE_PYTHON := $(shell sed -n 's/^ARG PYTHON_IMAGE=python:\([0-9.]*\)-.*/\1/p' Dockerfile)
LOCK_FLAGS ?=
lock: setup
	$(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes $(LOCK_FLAGS) \
		--python-version $(IMAGE_PYTHON) --python-platform x86_64-manylinux_2_36 \
		--custom-compile-command "make lock" --output-file requirements.lock
	$(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(BIN)/uv pip compile - --quiet --generate-hashes $(LOCK_FLAGS) \
		--python-version $(IMAGE_PYTHON) --python-platform x86_64-manylinux_2_36 \
		--custom-compile-command "make lock" --output-file requirements-build.lock
	$(BIN)/cyclonedx-py requirements --output-reproducible --output-format JSON \
		--pyproject pyproject.toml --output-file charts/a2i-retraining-operator/sbom.cdx.json requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist $(STANDINS)/.ruff_cache $(STANDINS)/*.egg-info

# The chart's Grafana dashboard JSON, generated with grafana-foundation-sdk
# (tests/support/grafana_dashboard.py; tests/packaging/test_dashboard.py checks it is current).
dashboard: setup
	$(PY) tests/support/grafana_dashboard.py

# The chart's generated admission rules (templates/_governance.tpl) from the governance table
# (operator/retraining_operator/reconcile/governance.py; tests/packaging/test_tenancy_admission.py
# checks it is current).
admission: setup
	$(PY) -c 'from retraining_operator.reconcile.governance import render_template; import sys; sys.stdout.write(render_template())' > charts/a2i-retraining-operator/templates/_governance.tpl
