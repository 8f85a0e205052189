# Containers and clusters: images, the local compose cluster, `ray up` clusters, and `make submit`.
# Included from the Makefile (`include cluster/cluster.mk`); docs/clusters.md walks through every path.
# Every variable can be overridden on the command line, e.g. `make submit ADDRESS=http://127.0.0.1:8266`.

VENV ?= .venv
RAY ?= $(VENV)/bin/ray
DOCKER ?= docker
COMPOSE ?= $(DOCKER) compose

# Where results come back to on this machine (make compose-results).
RESULTS ?= results

# --- token authentication ----------------------------------------------------------------------------
# Ray 2.60 checks a shared token on the dashboard, the job API and the GCS when RAY_AUTH_MODE=token.
# One file holds it on this machine; compose-up hands it to the containers, cluster-up copies it to the
# nodes (file_mounts in cluster/*.yaml use the default path), and submit sends it. RAY_AUTH_TOKEN, where
# set (a KubeRay cluster's token, say), wins over the file.
RAY_TOKEN_FILE ?= $(HOME)/.ray/auth_token

# --- images ------------------------------------------------------------------------------------------
IMAGE_CPU ?= regimen:cpu
IMAGE_GPU ?= regimen:gpu
# e.g. --build-arg BASE_IMAGE=localpy:3.11 --build-arg RUN_UID=0 --network host (what CI does)
DOCKER_BUILD_ARGS ?=

# --- the compose cluster -----------------------------------------------------------------------------
COMPOSE_FILES ?= -f docker/compose.yaml
WORKERS ?= 2
# How long compose-up waits for every worker to join the head.
COMPOSE_WAIT_S ?= 120

# --- submit ------------------------------------------------------------------------------------------
# The cluster's dashboard as seen from here: the compose cluster publishes it on 127.0.0.1:8265; for a
# `ray up` cluster run `make cluster-dashboard` (an SSH tunnel) first; for KubeRay `kubectl port-forward`.
ADDRESS ?= http://127.0.0.1:8265
SPECS ?= specs
# The results store as the driver (on the head) and the workers see it: /results is the compose cluster's
# shared volume; cloud clusters share no disk, so give them s3://BUCKET/PREFIX or gs://BUCKET/PREFIX.
SUBMIT_RESULTS ?= /results
# More arguments for `regimen run`, e.g. ARGS="--synthetic --max-epochs 2".
ARGS ?=
# More options for `ray job submit`, e.g. SUBMIT_OPTS=--no-wait.
SUBMIT_OPTS ?=
# The working directory sent with the job holds the code and the specs; never data, results or the venv.
# gitignore syntax: a leading / anchors a name to the checkout's top (plain "report" would drop jobs/report).
SUBMIT_RUNTIME_ENV ?= {"excludes": ["/.git", "/.venv", "/venv", "/data", "/results", "/results-*", "/report", \
  "/bench/data", "/build", "/dist", "*.egg-info", "**/__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "/.ray", "/.gl", "/.whl"]}

# --- ray up ------------------------------------------------------------------------------------------
CLUSTER ?= cluster/aws.yaml

.PHONY: ray-token image-cpu image-gpu compose-up compose-wait compose-status compose-results compose-down \
  compose-clean submit cluster-up cluster-down cluster-dashboard ci-containers

# Makes the token file if there is none (ray's own format: any secret string; 32 random bytes, hex).
ray-token: ## make the Ray auth token file (RAY_TOKEN_FILE) if there is none
	@test -s "$(RAY_TOKEN_FILE)" || { mkdir -p "$(dir $(RAY_TOKEN_FILE))" && umask 077 && \
	  $(PYTHON) -c "import secrets; print(secrets.token_hex(32), end='')" > "$(RAY_TOKEN_FILE)" && \
	  echo "made a new Ray auth token in $(RAY_TOKEN_FILE)"; }

image-cpu: ## build the CPU worker image (docker/Dockerfile.cpu) as IMAGE_CPU
	$(DOCKER) build -f docker/Dockerfile.cpu -t $(IMAGE_CPU) $(DOCKER_BUILD_ARGS) .

image-gpu: ## build the GPU worker image (docker/Dockerfile.gpu) as IMAGE_GPU
	$(DOCKER) build -f docker/Dockerfile.gpu -t $(IMAGE_GPU) $(DOCKER_BUILD_ARGS) .

# REGIMEN_DATA_DIR is made absolute here: Compose would read a relative one from docker/, not the checkout.
compose-up: ray-token ## start the local container cluster: a head and WORKERS workers
	data="$$(realpath -m "$${REGIMEN_DATA_DIR:-data}")" && mkdir -p "$$data" && \
	RAY_AUTH_TOKEN="$$(cat "$(RAY_TOKEN_FILE)")" REGIMEN_IMAGE="$${REGIMEN_IMAGE:-$(IMAGE_CPU)}" REGIMEN_DATA_DIR="$$data" \
	  $(COMPOSE) $(COMPOSE_FILES) up -d --wait --scale ray-worker=$(WORKERS)
	@$(compose_wait)

# Waits until the head sees itself and every worker alive.
compose-wait: ## wait until every compose node has joined the head
	@$(compose_wait)

compose_wait = want=$$(( $(WORKERS) + 1 )); end=$$(( $$(date +%s) + $(COMPOSE_WAIT_S) )); \
	while :; do \
	  alive=$$($(COMPOSE) $(COMPOSE_FILES) exec -T ray-head ray status 2>/dev/null | \
	    awk '/^Active:/{a=1; next} /^Pending:/{a=0} a && /node_/{n++} END{print n+0}'); \
	  [ "$$alive" -ge "$$want" ] && { echo "compose cluster: $$alive of $$want nodes alive"; break; }; \
	  [ "$$(date +%s)" -lt "$$end" ] || { echo "compose cluster: $$alive of $$want nodes after $(COMPOSE_WAIT_S) s" >&2; exit 1; }; \
	  sleep 2; \
	done

compose-status: ## the compose cluster's containers and Ray's view of it
	$(COMPOSE) $(COMPOSE_FILES) ps
	$(COMPOSE) $(COMPOSE_FILES) exec -T ray-head ray status

# Copies the store out of the compose cluster's results volume (through the head) into $(RESULTS).
compose-results: ## copy the compose cluster's results into RESULTS (default ./results)
	@mkdir -p "$(RESULTS)"
	$(COMPOSE) $(COMPOSE_FILES) cp ray-head:/results/. "$(RESULTS)/"

# Stops the cluster; the results volume stays (finished jobs are not retrained next time).
compose-down: ## stop the compose cluster (its results volume stays)
	$(COMPOSE) $(COMPOSE_FILES) down --remove-orphans

# Stops the cluster and deletes its results volume.
compose-clean: ## stop the compose cluster and delete its results volume
	$(COMPOSE) $(COMPOSE_FILES) down --remove-orphans --volumes

# Runs `regimen run` on the cluster at ADDRESS as a Ray job; exits with the job's outcome.
submit: ## run the suite as a Ray job on the cluster at ADDRESS (SPECS, SUBMIT_RESULTS, ARGS)
	@test -s "$(RAY_TOKEN_FILE)" || test -n "$$RAY_AUTH_TOKEN" || { echo "no Ray auth token: none in \
	$(RAY_TOKEN_FILE) and RAY_AUTH_TOKEN unset (make compose-up / cluster-up make one)" >&2; exit 2; }
	RAY_AUTH_MODE=token $(if $(wildcard $(RAY_TOKEN_FILE)),RAY_AUTH_TOKEN_PATH="$(RAY_TOKEN_FILE)") \
	  $(RAY) job submit --address "$(ADDRESS)" --working-dir . --runtime-env-json '$(SUBMIT_RUNTIME_ENV)' \
	  $(SUBMIT_OPTS) -- regimen run $(SPECS) --results "$(SUBMIT_RESULTS)" $(ARGS)

# `ray up` copies ~/.ray/auth_token to the nodes (see file_mounts in cluster/*.yaml): make sure it exists.
cluster-up: ## start a cloud cluster with ray up (CLUSTER=cluster/aws.yaml or cluster/gcp.yaml)
	RAY_AUTH_MODE=token $(RAY) get-auth-token --generate > /dev/null
	$(RAY) up -y $(CLUSTER)

cluster-down: ## tear the cloud cluster down (ray down)
	$(RAY) down -y $(CLUSTER)

# Forwards the head's dashboard (127.0.0.1:8265 there) to 127.0.0.1:8265 here through SSH; leave it running.
cluster-dashboard: ## SSH-tunnel the cloud cluster's dashboard to 127.0.0.1:8265 (leave running)
	$(RAY) dashboard $(CLUSTER)

# The CI container stage (root; a private dockerd; about 5 minutes on 2 cores): see .ci/containers.sh.
ci-containers: ## build the CPU image, run the suite on the compose cluster with a worker killed, render the report
	.ci/containers.sh
