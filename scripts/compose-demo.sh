#!/usr/bin/env bash
# `make compose-demo` (after `make images`): a real build of images/linux-baseline through docker-compose.yml.
# The agent container reaches the test VM container only through the proxy container, and its logs go to
# the Azurite container; the stored run is then read back with `docker-compose run --rm isobuild logs`.
# Everything is torn down at the end, also on failure or Ctrl-C: containers, networks, volumes, and the
# podman API service when this script started it (with podman, docker-compose talks to podman's
# Docker-compatible socket). Exit code: the build's, else that of `logs`.
# COMPOSE_PROJECT_NAME names the stack (default isobuild-demo); ISOBUILD_RUN_ID the run.
set -euo pipefail
SCRIPT_NAME="make compose-demo"
source "$(dirname "$0")/images/common.sh"
choose_engine
command -v docker-compose >/dev/null || die "docker-compose is not installed; run \`make deps\`."

project="${COMPOSE_PROJECT_NAME:-isobuild-demo}"
run_id="${ISOBUILD_RUN_ID:-compose-demo-$(date -u +%Y%m%dT%H%M%SZ)}"
work="$ROOT/.work/compose"
service_pid=""
socket_dir=""

compose() {
  docker-compose --ansi never -p "$project" -f "$ROOT/docker-compose.yml" "$@"
}

teardown() {
  local status=$?
  trap - EXIT INT TERM
  say "=== tearing down $project"
  # -t: nothing is mid-build any more, so no need for the agent's 16-minute stop grace.
  compose down --volumes --remove-orphans -t 20 >"$work/down.log" 2>&1 ||
    say "docker-compose down failed; see $work/down.log"
  if [[ -n $service_pid ]]; then
    kill "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
    rm -rf "$socket_dir"
    say "    stopped the podman API service this demo started"
  fi
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash "$ROOT/scripts/compose-setup.sh" >/dev/null

if [[ $ENGINE == podman ]]; then
  # A private API socket for this run (short path: unix socket paths are limited to 107 bytes).
  socket_dir="$(mktemp -d "${XDG_RUNTIME_DIR:-/run}/isobuild-podman.XXXXXX")"
  podman system service --time=0 "unix://$socket_dir/podman.sock" >"$work/podman-service.log" 2>&1 &
  service_pid=$!
  export DOCKER_HOST="unix://$socket_dir/podman.sock"
  deadline=$((SECONDS + 20))
  until curl -fs --unix-socket "$socket_dir/podman.sock" http://d/_ping >/dev/null 2>&1 || ((SECONDS > deadline)); do
    kill -0 "$service_pid" 2>/dev/null || die "podman system service exited; see $work/podman-service.log"
    sleep 0.2
  done
  curl -fs --unix-socket "$socket_dir/podman.sock" http://d/_ping >/dev/null ||
    die "podman's API socket did not answer within 20 s; see $work/podman-service.log"
fi

say "=== docker-compose up: azurite, testvm, proxy ($project, $ENGINE)"
# Whatever a killed earlier run of this project left behind goes first.
compose down --volumes --remove-orphans -t 5 >"$work/down.log" 2>&1 || true
compose up -d --no-build azurite testvm proxy
azurite_up() { compose logs --no-color azurite 2>/dev/null | grep -q 'successfully listens'; }
deadline=$((SECONDS + 60))
until azurite_up || ((SECONDS > deadline)); do sleep 1; done
azurite_up || die "Azurite did not start within 60 s: $(compose logs --no-color --tail 5 azurite 2>&1)"

say "=== docker-compose run --rm isobuild build  (run $run_id: agent → proxy → test VM, logs to Azurite)"
build_status=0
compose run --rm -T -e "ISOBUILD_RUN_ID=$run_id" -e ISOBUILD_LOG_FORMAT=text isobuild build || build_status=$?

say "=== docker-compose run --rm isobuild logs $run_id  (read back from Azurite)"
logs_status=0
compose run --rm -T isobuild logs "$run_id" || logs_status=$?

if ((build_status != 0)); then exit "$build_status"; fi
exit "$logs_status"
