# Project commands. `make help` lists them. Everything lands under git-ignored .venv/,
# model/.venv/, .bin/ and .state/; servers bind 127.0.0.1 and are stopped by PID.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
STACK ?= dev
KUBERNETES_VERSION := $(shell cat tools/KUBERNETES_VERSION)
PULUMI_VERSION := $(shell sed -n 's/^pulumi==//p' requirements.txt)
VENV := .venv
VENV_STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/.bin:$(PATH)

# The Pulumi engine, local and offline: state in a file backend under .state/, plugins from
# .bin/ through a project-local PULUMI_HOME, never downloaded. The passphrase only guards the
# local dev state; it is not a secret (real environments use a KMS or the Pulumi Cloud).
export PULUMI_HOME := $(CURDIR)/.state/pulumi-home
export PULUMI_BACKEND_URL := file://$(CURDIR)/.state/pulumi-state
export PULUMI_CONFIG_PASSPHRASE ?= dev-only-local-state-passphrase
export PULUMI_SKIP_UPDATE_CHECK := true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true
# .bin/ is on PATH and holds provider binaries; plugins come from PULUMI_HOME at their pinned
# versions, not from whatever `pulumi-resource-*` PATH offers first.
export PULUMI_IGNORE_AMBIENT_PLUGINS := true
# Behind a TLS-intercepting proxy the image build trusts the same CA bundle as this machine.
export MODEL_BUILD_CA_BUNDLE ?= $(SSL_CERT_FILE)

.PHONY: help
help: ## List the project commands
	@grep -hE '^[a-z][a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# --- Environments -----------------------------------------------------------------------

$(VENV_STAMP): requirements.txt requirements-dev.txt requirements-gcp.txt requirements-aws.txt constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt -r requirements-gcp.txt -r requirements-aws.txt -c constraints.txt
	@touch $@

.PHONY: venv
venv: $(VENV_STAMP) ## Create the Pulumi program's virtualenv (.venv)

.PHONY: model-venv
model-venv: ## Create the model's virtualenv (model/.venv: TensorFlow, server, training)
	scripts/model-venv.sh

.PHONY: schemas
schemas: ## Copy the official Kubernetes OpenAPI documents of the pinned version
	KUBERNETES_VERSION=$(KUBERNETES_VERSION) scripts/k8s-openapi.sh

.PHONY: setup
setup: venv model-venv schemas ## Everything the unit and model tests need

.PHONY: toolchain
toolchain: ## Build pulumi, its Python language host and the providers from Go modules
	scripts/toolchain.sh

.PHONY: toolchain-cluster
toolchain-cluster: ## Build etcd, the Kubernetes control plane, kubectl and kwok from Go modules
	scripts/toolchain.sh cluster

.PHONY: cluster
cluster: toolchain-cluster ## Start Docker, the registry and a local cluster with simulated GPU nodes
	scripts/cluster.sh start

.PHONY: cluster-stop
cluster-stop: ## Stop the local cluster, Docker and the registry
	scripts/cluster.sh stop

.PHONY: docker
docker: ## Start the Docker engine and the registry on 127.0.0.1:5000
	scripts/docker.sh start

.PHONY: base-image
base-image: docker ## Make the local Debian + Python base image (no public registry here)
	scripts/base-image.sh

.PHONY: stop
stop: ## Stop every server this project started (by PID)
	scripts/cluster.sh stop

# --- Stacks -----------------------------------------------------------------------------

.PHONY: engine-check
engine-check: ## Check that the Pulumi CLI of the pinned version is on PATH
	@found=$$(pulumi version 2>/dev/null || echo none); \
	if [ "$$found" != "v$(PULUMI_VERSION)" ]; then \
	  echo "make: needs the Pulumi CLI v$(PULUMI_VERSION) on PATH (found: $$found)." >&2; \
	  echo "      Install it the usual way, or see tools/README.md for building it here." >&2; \
	  exit 1; \
	fi

# --skip-plugin-pre-install: .venv also holds the prod stack's cloud SDKs, whose plugins the
# dev stack never loads; without it the engine would insist on installing them first.
# The dev stack targets the local cluster; its kubeconfig path belongs to this machine, so it
# comes from the environment (scripts/cluster.sh env) rather than the stack file.
LOCAL_CLUSTER := $(if $(filter dev,$(STACK)),cluster)
.PHONY: up
up: engine-check venv base-image $(LOCAL_CLUSTER) ## Build, push and deploy STACK (default dev)
	$(if $(LOCAL_CLUSTER),eval "$$(scripts/cluster.sh env)";) \
	pulumi stack select --create $(STACK) && \
	pulumi up --stack $(STACK) --skip-plugin-pre-install --yes

.PHONY: preview
preview: engine-check venv $(LOCAL_CLUSTER) ## Show what `make up` would change in STACK, with the diff
	$(if $(LOCAL_CLUSTER),eval "$$(scripts/cluster.sh env)";) \
	pulumi preview --stack $(STACK) --skip-plugin-pre-install --diff

# --- Checks -----------------------------------------------------------------------------

.PHONY: lint
lint: venv model-venv ## ruff and mypy (strict on components/ and settings; the model with its venv)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy __main__.py settings.py stack_outputs.py components tests/unit tests/image tests/cluster
	cd model && .venv/bin/mypy --config-file ../pyproject.toml --strict serving training tests ../bench

.PHONY: test-unit
test-unit: venv schemas ## Unit layer: settings, components and both stacks under mocks
	$(VENV)/bin/pytest tests/unit

.PHONY: test-model
test-model: model-venv ## Model layer: training round trip, the server over real HTTP, drain
	cd model && .venv/bin/pytest tests

.PHONY: test-image
test-image: venv base-image ## Builds the image, runs it, predicts over HTTP; TF Serving checks
	$(VENV)/bin/pytest tests/image

.PHONY: test-cluster
test-cluster: venv cluster ## The declared objects admitted and scheduled by a real control plane
	$(VENV)/bin/pytest -m cluster tests/cluster

.PHONY: test
test: lint test-unit test-model test-image test-cluster ## Everything CI runs

.PHONY: bench
bench: model-venv ## Python runtime vs Flask + Keras predict (writes bench/results/)
	model/.venv/bin/python bench/serving_bench.py
