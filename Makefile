# trigger-operator: `make run` and `make test` set up everything they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEV := .dev
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help setup venv control-plane postgres promtool argocd-cm argocd-samples lint fmt test test-unit test-integration \
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
# (promtool, the dashboard), integration, e2e, and the short fault-injection profile
# (tests/chaos: a few faults of each kind, about two minutes); `make chaos` runs the long
# one.
test: lint  ## lint and the unit tier, then the ledger, Argo CD, monitoring, integration, e2e and chaos tiers
	@$(call pytest_tier,tests/unit)
	@$(MAKE) --no-print-directory control-plane postgres promtool
	@$(call pytest_tier,tests --ignore=tests/unit)

test-unit: venv  ## the unit tier alone (no cluster)
	@$(call pytest_tier,tests/unit)

test-integration: setup  ## the integration tier alone
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

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
