# Sourced by the image scripts: where things are, which OCI engine to use, and how to name images.
# The engine is Docker when a Docker daemon answers, otherwise podman (installed by `make deps`), which
# then reads the project's containers.conf instead of /etc/containers.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
IMAGES_WORK="$ROOT/.work/images"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/containers.conf}"

# The images `make images` builds, by the names docker-compose.yml and the tests use.
IMAGE_AGENT="localhost/isobuild:latest"
IMAGE_PROXY="localhost/isobuild-proxy:latest"
IMAGE_TESTVM="localhost/isobuild-testvm:latest"

say() { printf '%s\n' "$*" >&2; }
SCRIPT_NAME="${SCRIPT_NAME:-make images}"
die() {
  say "$SCRIPT_NAME: $*"
  exit 1
}

# Pins come from the files that use them, so there is one place to change each.
dockerfile_arg() { # FILE NAME: the default of `ARG NAME=…` in FILE
  sed -n "s/^ARG $2=\(.*\)\$/\1/p" "$ROOT/$1" | head -n1
}
NODE_VERSION="$(dockerfile_arg Dockerfile NODE_VERSION)"
PACKER_VERSION="$(dockerfile_arg Dockerfile PACKER_VERSION)"
IMAGE_DEBIAN="docker.io/library/debian:bookworm-slim"
IMAGE_NODE="docker.io/library/node:${NODE_VERSION}-bookworm-slim"
IMAGE_AZURITE="$(sed -n 's/^ *image: *\(.*azurite.*\)$/\1/p' "$ROOT/docker-compose.yml" | head -n1)"

# Sets ENGINE to docker or podman, or fails saying what is missing.
choose_engine() {
  if [[ -n "${ENGINE:-}" ]]; then
    command -v "$ENGINE" >/dev/null || die "ENGINE=$ENGINE, but $ENGINE is not installed."
  elif docker_daemon_answers; then
    ENGINE=docker
  elif command -v podman >/dev/null; then
    ENGINE=podman
  else
    die "no OCI engine: no Docker daemon answers and podman is not installed. Run \`make deps\` (installs podman from Debian) or start Docker."
  fi
  export ENGINE
  if [[ $ENGINE == docker ]]; then export DOCKER_BUILDKIT=1; fi
}

# A real Docker daemon, not podman's Docker-compatible socket (which cannot take build secrets).
docker_daemon_answers() {
  command -v docker >/dev/null || return 1
  local server
  server="$(timeout 10 docker version --format '{{range .Server.Components}}{{.Name}} {{end}}' 2>/dev/null)" || return 1
  [[ -n $server && $server != *Podman* ]]
}

image_exists() {
  "$ENGINE" image inspect "$1" >/dev/null 2>&1
}

# Builds use only local base images (pulled or made by base-images.sh); the flag is spelled per engine.
no_pull() {
  if [[ $ENGINE == docker ]]; then printf -- '--pull=false'; else printf -- '--pull=never'; fi
}

image_size_mb() {
  "$ENGINE" image inspect --format '{{.Size}}' "$1" | awk '{ printf "%d MB", $1 / 1000000 }'
}
