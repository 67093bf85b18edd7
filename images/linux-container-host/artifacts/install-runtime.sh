#!/bin/bash
# isobuild example: container runtime packages for the linux-container-host image (Debian/Ubuntu).
#
# AIB runs scriptUri scripts as root; run by hand as another user, the script uses sudo.
# Best effort: a build VM without internet access only logs a warning, and every apt call is bounded in
# time, so an offline build does not hang. Services are NOT started during the build (a temporary
# policy-rc.d denies it); the packages enable them, so they start on VMs created from the image.
# Idempotent: apt-get install does nothing for packages already installed.
set -euo pipefail

log() { echo "[install-runtime] $*"; }

SUDO=sudo
if [[ $(id -u) -eq 0 ]]; then SUDO=""; fi

PACKAGES=(containerd docker.io)
POLICY=/usr/sbin/policy-rc.d
created_policy=false

# Removes the policy-rc.d this script created, however the script ends.
cleanup() {
  if [[ $created_policy == true ]]; then
    $SUDO rm -f "$POLICY"
    log "removed temporary $POLICY"
  fi
}
trap cleanup EXIT

# shellcheck source=/dev/null
log "starting on $(hostname) ($( (. /etc/os-release && echo "${PRETTY_NAME:-unknown OS}") 2>/dev/null || echo "unknown OS"), kernel $(uname -r))"

if ! command -v apt-get >/dev/null 2>&1; then
  echo "warning: apt-get not found; skipping installation of ${PACKAGES[*]}"
  exit 0
fi

# Packages already installed (e.g. a second run, or a source image that has them): nothing to do.
missing=()
for package in "${PACKAGES[@]}"; do
  if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
    log "unchanged: $package is installed"
  else
    missing+=("$package")
  fi
done
if ((${#missing[@]} == 0)); then
  log "done (all packages already installed)"
  exit 0
fi

# Keep package maintainer scripts from starting containerd/dockerd on the build VM.
if [[ -e $POLICY ]]; then
  log "keeping existing $POLICY"
else
  printf '#!/bin/sh\n# Temporary, from the isobuild install-runtime.sh step: no service starts during the image build.\nexit 101\n' |
    $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 0755 "$POLICY"
  created_policy=true
  log "wrote temporary $POLICY (services are not started during the build)"
fi

# No retries and short timeouts: offline, apt fails in seconds instead of minutes.
APT_OPTS=(-y -q -o Acquire::Retries=0 -o Acquire::http::Timeout=10 -o Acquire::https::Timeout=10
  -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confold)

log "apt-get update (at most 20s)"
$SUDO timeout 20 env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" update ||
  echo "warning: apt-get update failed or timed out (no network?); continuing with the package lists on the VM"

log "apt-get install ${missing[*]}"
if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install --no-install-recommends "${missing[@]}"; then
  log "installed: ${missing[*]}"
else
  echo "warning: could not install ${missing[*]} (no network?); the image gets the configuration without the packages"
fi

log "done"
