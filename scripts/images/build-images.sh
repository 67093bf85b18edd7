#!/usr/bin/env bash
# `make images`: builds every image the project ships or uses locally, idempotently (the engine's layer
# cache makes a second run quick):
#   localhost/isobuild          the agent (Dockerfile)
#   localhost/isobuild-proxy    isobuild-proxy (Dockerfile.proxy)
#   localhost/isobuild-testvm   the compose stack's test VM (test/Dockerfile.testvm)
#   the Azurite image docker-compose.yml names (pulled, or built from the npm package)
# Settings (environment or make variables):
#   ENGINE=docker|podman    default: Docker when a Docker daemon answers, otherwise podman
#   PACKER_SOURCE=hashicorp|debian   default: hashicorp when releases.hashicorp.com answers, otherwise debian
#   EXTRA_CA_CERTS=FILE     CA bundle for TLS-inspecting networks, given to builds as the secret extra_ca
#                           (default: this machine's bundle; empty: none). It is stored in no image.
set -euo pipefail
source "$(dirname "$0")/common.sh"
choose_engine
mkdir -p "$IMAGES_WORK"

if [[ $ENGINE == podman ]]; then
  say "engine: $(podman --version) (no Docker daemon answers), settings from $CONTAINERS_CONF"
else
  say "engine: Docker $(docker version --format '{{.Server.Version}}')"
fi

bash "$ROOT/scripts/images/base-images.sh"

answers() { # URL: true if it can be fetched from here
  curl -fsS -m 15 -o /dev/null "$1" 2>"$IMAGES_WORK/curl.err"
}

packer_args=()
if [[ -z ${PACKER_SOURCE:-} ]]; then
  sums="https://releases.hashicorp.com/packer/$PACKER_VERSION/packer_${PACKER_VERSION}_SHA256SUMS"
  if answers "$sums"; then
    PACKER_SOURCE=hashicorp
  else
    PACKER_SOURCE=debian
    say "releases.hashicorp.com does not answer ($(tail -n1 "$IMAGES_WORK/curl.err"))"
  fi
fi
case "$PACKER_SOURCE" in
hashicorp)
  say "Packer: HashiCorp's release $PACKER_VERSION, checked against its SHA256SUMS"
  # The windows-update plugin comes from GitHub; without it WindowsUpdate customizers are refused.
  if ! answers https://api.github.com/repos/rgl/packer-plugin-windows-update/releases; then
    say "Packer plugin windows-update: not installed (api.github.com does not answer)"
    packer_args+=(--build-arg WINDOWS_UPDATE_PLUGIN_VERSION=)
  fi
  ;;
debian) say "Packer: Debian's packer package (1.6.6: no external plugins, so WindowsUpdate customizers are refused)" ;;
*) die "PACKER_SOURCE must be hashicorp or debian, not \"$PACKER_SOURCE\"." ;;
esac
packer_args+=(--build-arg "PACKER_SOURCE=$PACKER_SOURCE")

secret_args=()
EXTRA_CA_CERTS="${EXTRA_CA_CERTS-/etc/ssl/certs/ca-certificates.crt}"
if [[ -n $EXTRA_CA_CERTS ]]; then
  [[ -r $EXTRA_CA_CERTS ]] || die "EXTRA_CA_CERTS=$EXTRA_CA_CERTS cannot be read; name a PEM bundle, or set it empty for none."
  secret_args=(--secret "id=extra_ca,src=$EXTRA_CA_CERTS")
  say "extra CA bundle for builds: $EXTRA_CA_CERTS (build secret extra_ca, not stored in any image)"
fi

build() { # NAME IMAGE DOCKERFILE CONTEXT [ARGS...]: one build, its output in .work/images/NAME.log
  local name="$1" image="$2" dockerfile="$3" context="$4" started log previous
  shift 4
  log="$IMAGES_WORK/$name.log"
  started=$SECONDS
  previous="$("$ENGINE" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
  if ! "$ENGINE" build "$(no_pull)" "${secret_args[@]}" "$@" -f "$dockerfile" -t "$image" "$context" >"$log" 2>&1; then
    tail -n 25 "$log" >&2
    die "building $image from $dockerfile failed (above: the end of its log, all of it in $log)."
  fi
  # The image this build replaced would stay behind untagged; a container still using it keeps it.
  if [[ -n $previous && $previous != "$("$ENGINE" image inspect --format '{{.Id}}' "$image")" ]]; then
    "$ENGINE" rmi "$previous" >/dev/null 2>&1 || true
  fi
  say "built $image in $((SECONDS - started)) s, $(image_size_mb "$image")"
}

build agent "$IMAGE_AGENT" "$ROOT/Dockerfile" "$ROOT" "${packer_args[@]}"
build proxy "$IMAGE_PROXY" "$ROOT/Dockerfile.proxy" "$ROOT"
build testvm "$IMAGE_TESTVM" "$ROOT/test/Dockerfile.testvm" "$ROOT"
if image_exists "$IMAGE_AZURITE"; then
  say "kept $IMAGE_AZURITE, $(image_size_mb "$IMAGE_AZURITE")"
elif timeout 300 "$ENGINE" pull -q "$IMAGE_AZURITE" >/dev/null 2>"$IMAGES_WORK/pull.err"; then
  say "pulled $IMAGE_AZURITE, $(image_size_mb "$IMAGE_AZURITE")"
else
  say "cannot pull $IMAGE_AZURITE: $(tail -n1 "$IMAGES_WORK/pull.err")"
  mkdir -p "$IMAGES_WORK/empty"
  build azurite "$IMAGE_AZURITE" "$ROOT/scripts/images/azurite.Containerfile" "$IMAGES_WORK/empty" \
    --build-arg "AZURITE_VERSION=${IMAGE_AZURITE##*:}"
fi

say "Packer in $IMAGE_AGENT: $("$ENGINE" run --rm --entrypoint packer "$IMAGE_AGENT" version | head -n1) ($PACKER_SOURCE)"
