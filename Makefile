# trigger-operator: `make run` and `make test` set up everything they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEV := .dev
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# The image `make image` builds and the container tier (tests/container) runs.
IMAGE ?= trigger-operator:dev

.PHONY: help setup venv control-plane postgres promtool docker image image-if-docker lock argocd-cm argocd-samples \
        lint fmt test test-unit test-integration test-container \
        run cluster-up cluster-down cluster-status crd clean chaos chaos-short bench-scale

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { \
	  echo "python3 venv support missing; installing python3-venv" >&2; \
	  apt-get update -q && apt-get install -y -q python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,bench]'
	@touch $@

venv: $(STAMP)  ## the virtual environment with the package and its dev tools

control-plane:  ## build the control-plane binaries once per machine (cached outside the repo)
	@bash hack/build-control-plane.sh >/dev/null

postgres:  ## make sure Debian's PostgreSQL server binaries are installed
	@bash scripts/ensure-postgres.sh

# The alert-rule tests need promtool; where it cannot be installed (not root, no apt) they
# are skipped and say so, and the rest of the tests still run.
promtool:  ## make sure promtool (Debian's prometheus package) is installed, for the alert tests
	@bash scripts/ensure-promtool.sh || \
	  echo "promtool unavailable: tests/monitoring/test_alerts.py will be skipped" >&2

# Docker for `make image` and the container tier: installs Debian's docker.io and starts
# dockerd as root when missing; otherwise it says why not, and the tier is skipped.
docker:  ## make sure a Docker engine answers (installs and starts one as root)
	@bash scripts/ensure-docker.sh

# No network inside the build: the host's pip fetches the locked wheels into build/image/.
# BASE_IMAGE=... picks the base; left unset, python:3.11-slim, or where it cannot be
# pulled, a stand-in made from Debian's packages (scripts/make-base-image.sh).
image: venv docker  ## build the operator image (IMAGE, default trigger-operator:dev) from the lock files, offline
	@IMAGE=$(IMAGE) PIP=$(BIN)/pip bash scripts/build-image.sh

image-if-docker: venv
	@if bash scripts/ensure-docker.sh; then \
	  $(MAKE) --no-print-directory image; \
	else echo "no Docker engine: the image is not built, tests/container will be skipped" >&2; fi

LOCK := $(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url \
        --no-emit-find-links
# LOCK_ARGS=--upgrade moves every pin to the newest release the constraints allow.
lock: venv  ## regenerate the hashed lock files of the image (requirements/*.txt)
	$(LOCK) $(LOCK_ARGS) --output-file requirements/runtime.txt pyproject.toml
	$(LOCK) $(LOCK_ARGS) --allow-unsafe --output-file requirements/installer.txt \
	  requirements/installer.in

argocd-cm: venv  ## regenerate deploy/argocd/argocd-cm.yaml from the Argo CD Lua files
	$(BIN)/python hack/argocd_cm.py

argocd-samples: setup  ## rewrite the Argo CD health samples from the operator on a dev cluster
	$(BIN)/pytest tests/integration/test_argocd_samples.py --write-argocd-samples $(PYTEST_ARGS)

setup: venv control-plane postgres promtool  ## everything the tests and `make run` need

lint: venv  ## ruff, mypy strict, import-linter
	$(BIN)/ruff check operator tests bench hack
	$(BIN)/ruff format --check operator tests bench hack
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: venv  ## format the code
	$(BIN)/ruff check --fix operator tests bench hack
	$(BIN)/ruff format operator tests bench hack

# pytest exits 5 when it runs no test. Every tier has tests, so that only happens when
# PYTEST_ARGS (say -k) selects none of a tier's: not a failure then, and only then.
define pytest_tier
echo "pytest $(strip $(1) $(PYTEST_ARGS))"; \
  status=0; $(BIN)/pytest $(1) $(PYTEST_ARGS) || status=$$?; \
  [ $$status -eq 0 ] || { [ $$status -eq 5 ] && [ -n "$(strip $(PYTEST_ARGS))" ]; }
endef

# Lint and the unit tier first: they need no cluster, so a mistake shows in seconds, before
# the control-plane build and the PostgreSQL and promtool set-up. Then every other tier,
# once each: ledger, Argo CD (Lua in gopher-lua, the argocd-cm patch), monitoring
# (promtool, the dashboard), integration, container (the image, where Docker runs), e2e,
# and the short fault-injection profile (tests/chaos: a few faults of each kind, about two
# minutes); `make chaos` runs the long one.
test: lint  ## lint and the unit tier, then the ledger, Argo CD, monitoring, integration, container, e2e and chaos tiers
	@$(call pytest_tier,tests/unit)
	@$(MAKE) --no-print-directory control-plane postgres promtool image-if-docker
	@export TRIGGER_OPERATOR_IMAGE=$(IMAGE); $(call pytest_tier,tests --ignore=tests/unit)

test-unit: venv  ## the unit tier alone (no cluster)
	@$(call pytest_tier,tests/unit)

test-integration: setup  ## the integration tier alone
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test-container: setup image  ## the container tier alone: the image as the Deployment runs it
	TRIGGER_OPERATOR_IMAGE=$(IMAGE) $(BIN)/pytest tests/container $(PYTEST_ARGS)

# The fault-injection suite (tests/chaos): CHAOS_FAULTS faults (default 300) at random
# moments; CHAOS_SEED=N replays one run.
chaos: setup  ## the long fault-injection profile (>= 300 faults; 20-40 minutes)
	CHAOS_PROFILE=long $(BIN)/pytest tests/chaos -s $(PYTEST_ARGS)

chaos-short: setup  ## the short fault-injection profile (a few faults of each kind; minutes)
	CHAOS_PROFILE=short $(BIN)/pytest tests/chaos -s $(PYTEST_ARGS)

# The scale benchmark (bench/scale.py): N = 1,000 and 10,000 resident triggers, the
# CronJob controller beside it; BENCH_ARGS passes options (e.g. --full, --profile).
bench-scale: setup  ## the scale benchmark: bursts, cold start, memory, rollout, against CronJob
	$(BIN)/python bench/scale.py $(BENCH_ARGS)

cluster-up: venv control-plane  ## start the dev cluster (kubeconfig in .dev/kubeconfig)
	$(BIN)/trigger-operator dev-cluster up --dev-dir $(DEV)

cluster-down: venv  ## stop the dev cluster and every process of it
	$(BIN)/trigger-operator dev-cluster down --dev-dir $(DEV)

cluster-status: venv
	@$(BIN)/trigger-operator dev-cluster status --dev-dir $(DEV)

run: setup  ## the dev cluster, the CRD, the operator in the foreground, and the examples
	@$(BIN)/trigger-operator dev-cluster status --dev-dir $(DEV) >/dev/null 2>&1 || \
	  $(BIN)/trigger-operator dev-cluster up --dev-dir $(DEV)
	$(DEV)/bin/kubectl --kubeconfig $(DEV)/kubeconfig apply --server-side -f crds/
	$(DEV)/bin/kubectl --kubeconfig $(DEV)/kubeconfig wait --for=condition=Established \
	  crd/scheduledtriggers.triggers.dev --timeout=60s
	$(DEV)/bin/kubectl --kubeconfig $(DEV)/kubeconfig apply -f examples/
	KUBECONFIG=$(DEV)/kubeconfig TRIGGER_OPERATOR_SQLITE_PATH=$(DEV)/ledger.db \
	  TRIGGER_OPERATOR_OPERATOR_NAMESPACE=default TRIGGER_OPERATOR_METRICS_AUTH=false \
	  $(BIN)/trigger-operator run

clean: cluster-down  ## stop the cluster and remove .dev/ and .venv/
	rm -rf $(DEV) $(VENV)
