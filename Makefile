# Project commands. `make help` lists them. Everything lands under git-ignored .venv/,
# model/.venv/, .bin/ and .state/; servers bind 127.0.0.1 and are stopped by PID.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
STACK ?= dev
KUBERNETES_VERSION := $(shell cat tools/KUBERNETES_VERSION)
VENV := .venv
VENV_STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
# The benchmark's HTTP load generator, from Debian (bookworm's build).
WRK_VERSION := 4.1.0-3+b2
export PATH := $(CURDIR)/.bin:$(PATH)

# The engine's environment (local file backend, project-local PULUMI_HOME, offline flags) is
# owned by engine/environment.py; `python -m engine env` prints it for the plain CLI.
ENGINE := $(PY) -m engine
# Behind a TLS-intercepting proxy the image build trusts the same CA bundle as this machine.
export MODEL_BUILD_CA_BUNDLE ?= $(SSL_CERT_FILE)

.PHONY: help
help: ## List the project commands
	@grep -hE '^[a-z][a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# --- Environments -----------------------------------------------------------------------

$(VENV_STAMP): requirements.txt requirements-dev.txt requirements-gcp.txt requirements-aws.txt constraints.txt
	@test -x $(PY) || scripts/uv.sh venv --quiet --python $(PYTHON) $(VENV)
	scripts/uv.sh pip install --quiet --python $(PY) -r requirements-dev.txt -r requirements-gcp.txt -r requirements-aws.txt -c constraints.txt
	@touch $@

.PHONY: venv
venv: $(VENV_STAMP) ## Create the Pulumi program's virtualenv (.venv)

.PHONY: model-venv
model-venv: ## Create the model's virtualenv (model/.venv: TensorFlow, server, training)
	scripts/model-venv.sh

.PHONY: schemas
schemas: ## Copy the official Kubernetes OpenAPI documents and the monitor CRDs of the pinned versions
	KUBERNETES_VERSION=$(KUBERNETES_VERSION) scripts/k8s-openapi.sh
	scripts/crds.sh

.PHONY: setup
setup: venv model-venv schemas ## Everything the unit and model tests need

.PHONY: toolchain
toolchain: ## Build every tool from Go modules: the engine, providers, BuildKit, the control plane
	scripts/toolchain.sh all

.PHONY: toolchain-cluster
toolchain-cluster: ## Build etcd, the Kubernetes control plane, kubectl and kwok from Go modules
	scripts/toolchain.sh cluster

.PHONY: cluster
cluster: toolchain-cluster ## Start Docker, the registry and a local cluster with simulated GPU nodes
	scripts/cluster.sh start

.PHONY: docker
docker: ## Start the Docker engine and the registry on 127.0.0.1:5000
	scripts/docker.sh start

.PHONY: base-image
base-image: docker ## Make the local Debian + Python base image (no public registry here)
	scripts/base-image.sh

.PHONY: buildkit
buildkit: docker ## Start the BuildKit daemon the docker-build provider builds the image with
	scripts/toolchain.sh buildkitd buildctl docker-buildx
	scripts/buildkit.sh start

.PHONY: stop
stop: ## Stop every server this project started (by PID)
	scripts/buildkit.sh stop
	scripts/cluster.sh stop

# --- Stacks -----------------------------------------------------------------------------

# Every stack command goes through our Automation API driver (engine/): exit 0 on success, 1 on
# an error, and for drift 2 when the live cluster differs from the declared stack.
# The dev stack targets the local cluster; its kubeconfig path belongs to this machine, so it
# comes from the environment (scripts/cluster.sh env) rather than the stack file.
LOCAL_CLUSTER := $(if $(filter dev,$(STACK)),cluster)
WITH_CLUSTER := $(if $(LOCAL_CLUSTER),eval "$$(scripts/cluster.sh env)";)
STACK_PREREQUISITES := venv engine-toolchain $(LOCAL_CLUSTER)
DRIFT_REPORT ?= .state/drift-$(STACK).json

.PHONY: engine-toolchain
engine-toolchain: ## Build (if missing) the Pulumi CLI, its Python host and the providers
	scripts/toolchain.sh engine

.PHONY: up
up: $(STACK_PREREQUISITES) base-image buildkit ## Build, push and deploy STACK (default dev) with the real engine
	$(WITH_CLUSTER) $(ENGINE) up --stack $(STACK)

.PHONY: preview
preview: $(STACK_PREREQUISITES) ## Show what `make up` would change in STACK (diff, policy); PREVIEW_RECORD=file.json also records it
	$(WITH_CLUSTER) $(ENGINE) preview --stack $(STACK) $(if $(PREVIEW_RECORD),--record $(PREVIEW_RECORD))

.PHONY: drift
drift: $(STACK_PREREQUISITES) ## Compare STACK with the live cluster; writes nothing to state (exit 2: drift)
	$(WITH_CLUSTER) $(ENGINE) drift --stack $(STACK) --report $(DRIFT_REPORT)

ROLLOUT_REPORT ?= .state/rollout-$(STACK).json
PROMETHEUS_URL ?= http://127.0.0.1:9090

.PHONY: rollout
rollout: $(STACK_PREREQUISITES) ## Walk STACK's canary (canaryModelVersion) through canarySteps, judged by PROMETHEUS_URL; promote or roll back (exit 3: rolled back, 4: no verdict)
	$(WITH_CLUSTER) $(ENGINE) rollout --stack $(STACK) --prometheus $(PROMETHEUS_URL) --report $(ROLLOUT_REPORT)

.PHONY: rollback
rollback: $(STACK_PREREQUISITES) ## Put STACK back on the image it ran before (TO=<digest or model version>): no build, pinned in its stack file
	$(WITH_CLUSTER) $(ENGINE) rollback --stack $(STACK) $(if $(TO),--to $(TO))

# Cloud stacks' provider plugins, downloaded from Pulumi's plugin host: only where that is
# reachable (the workflows' runners), never on the offline development machine.
CLOUD_PLUGINS := gcp=$(shell python3 engine/pins.py requirements-gcp.txt pulumi-gcp) aws=$(shell python3 engine/pins.py requirements-aws.txt pulumi-aws)

.PHONY: cloud-plugins
cloud-plugins: engine-toolchain ## (CI runners only: downloads) the gcp and aws provider plugins at their pinned versions
	eval "$$($(ENGINE) env)"; for plugin in $(CLOUD_PLUGINS); do \
	  pulumi plugin install resource "$${plugin%=*}" "$${plugin#*=}"; done

.PHONY: refresh
refresh: $(STACK_PREREQUISITES) ## Accept the live cluster into STACK's state (pulumi refresh)
	$(WITH_CLUSTER) $(ENGINE) refresh --stack $(STACK)

.PHONY: destroy
destroy: $(STACK_PREREQUISITES) ## Delete everything STACK deployed
	$(WITH_CLUSTER) $(ENGINE) destroy --stack $(STACK)

# --- Checks -----------------------------------------------------------------------------

.PHONY: lint
lint: venv model-venv ## ruff, mypy, shellcheck, and actionlint on .github/ (with shellcheck on run: steps)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy __main__.py gpu_model_serving model_contract engine policy review \
	  tests/unit tests/image tests/cluster tests/engine tests/metrics bench/engine_bench.py bench/rollout_bench.py
	# Each further program has its own __main__ module: checked on its own.
	$(VENV)/bin/mypy examples/model-server
	$(VENV)/bin/mypy provider
	# MYPYPATH: the model tests check the stdlib contract reader (model_contract/) against TensorFlow.
	cd model && MYPYPATH=.. .venv/bin/mypy --config-file ../pyproject.toml --strict serving training tests \
	  ../bench/serving_bench.py ../bench/bench_paths.py ../bench/workload.py \
	  ../bench/servers_under_test.py ../bench/load_clients.py ../bench/in_process.py \
	  ../bench/serving_report.py ../bench/app_cost.py ../bench/flask_baseline.py \
	  ../bench/transport_ceiling.py ../bench/kserve_peer.py ../bench/free_model.py ../bench/soak.py
	command -v shellcheck >/dev/null || scripts/apt-install.sh shellcheck
	shellcheck scripts/*.sh .ci/run
	scripts/toolchain.sh lint
	.bin/actionlint

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
test-cluster: venv schemas cluster ## The declared objects admitted and scheduled by a real control plane
	$(VENV)/bin/pytest -m cluster tests/cluster

.PHONY: toolchain-metrics
toolchain-metrics: ## Build prometheus and promtool from Go modules
	scripts/toolchain.sh metrics

.PHONY: test-metrics
test-metrics: venv model-venv toolchain-metrics ## Metrics layer: promtool evaluates the SLO alert rules; a real Prometheus judges canaries on real servers
	$(VENV)/bin/pytest tests/metrics

.PHONY: test-engine
test-engine: venv model-venv toolchain toolchain-metrics base-image buildkit cluster ## Engine layer: preview, up, no-op, change, drift, destroy, rollout (real servers and Prometheus)
	$(VENV)/bin/pytest -m engine tests/engine

.PHONY: test
test: lint test-unit test-model test-metrics test-image test-cluster test-engine ## Everything CI runs

.PHONY: kserve-venv
kserve-venv: ## The KServe peer's virtualenv (bench/.venv-kserve), for make bench
	scripts/kserve-venv.sh

.PHONY: bench
bench: model-venv kserve-venv ## Ours (REST, gRPC) vs KServe, the transport ceiling, the Flask seed, the in-process call (bench/results/)
	[[ "$$(dpkg-query -W -f='$${Version}' wrk 2>/dev/null)" == "$(WRK_VERSION)" ]] || scripts/apt-install.sh wrk=$(WRK_VERSION)
	scripts/toolchain.sh bench
	model/.venv/bin/python bench/serving_bench.py

.PHONY: soak
soak: model-venv ## 10 minutes of mixed good and hostile REST+gRPC traffic at concurrency 32: memory and fd growth, wrong answers
	cd bench && ../model/.venv/bin/python soak.py

.PHONY: bench-engine
bench-engine: venv engine-toolchain base-image buildkit cluster ## The engine's preview vs a minimal program, no-op up
	eval "$$(scripts/cluster.sh env)"; $(PY) bench/engine_bench.py

.PHONY: bench-rollout
bench-rollout: venv model-venv engine-toolchain toolchain-metrics base-image buildkit cluster ## A three-step rollout (30 s windows): the engine's share vs the waiting, PromQL query times
	eval "$$(scripts/cluster.sh env)"; $(PY) bench/rollout_bench.py
