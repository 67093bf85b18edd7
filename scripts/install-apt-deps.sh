#!/usr/bin/env bash
# Installs the Debian packages isobuild needs, but only those that are missing (idempotent, quiet when done).
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
# Test VMs fetch the Azure Linux agent with `apt-get download`, which needs package lists.
lists_present() { compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; }
if ((${#missing[@]} == 0)); then
  lists_present && exit 0
  echo "Fetching Debian package lists (test VMs download the Azure Linux agent)"
  SUDO=()
  [[ $(id -u) -eq 0 ]] || SUDO=(sudo)
  "${SUDO[@]}" apt-get update -qq
  exit 0
fi
echo "Installing Debian packages: ${missing[*]}"
SUDO=()
[[ $(id -u) -eq 0 ]] || SUDO=(sudo)
# Never start services from package scripts: tests start their own servers.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
  trap '"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
