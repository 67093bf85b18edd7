#!/bin/bash
# isobuild example: in-VM validation for the linux-container-host image.
# Checks that every configuration file is in place with the expected content; lists all failures, then
# exits 1 if there were any. The packages are not checked: offline builds skip them on purpose.
# Read-only: changes nothing on the VM.
set -euo pipefail

failures=0
pass() { echo "[validate] ok: $*"; }
fail() {
  echo "[validate] FAILED: $*" >&2
  failures=$((failures + 1))
}

# check_file PATH [PATTERN...]: PATH is a readable regular file containing every PATTERN (extended regexes).
check_file() {
  local path=$1 pattern
  shift
  if [[ ! -f $path || ! -r $path ]]; then
    fail "$path is missing or unreadable"
    return
  fi
  if (($# == 0)); then
    pass "$path exists"
  fi
  for pattern in "$@"; do
    if grep -qE -- "$pattern" "$path"; then
      pass "$path contains /$pattern/"
    else
      fail "$path does not contain /$pattern/"
    fi
  done
}

check_file /etc/modules-load.d/container-host.conf '^overlay$' '^br_netfilter$'
check_file /etc/sysctl.d/60-container-host.conf \
  '^net\.ipv4\.ip_forward = 1$' \
  '^net\.bridge\.bridge-nf-call-iptables = 1$' \
  '^fs\.inotify\.max_user_watches = 524288$'
check_file /etc/containerd/config.toml '^imports = \["/etc/containerd/conf\.d/\*\.toml"\]$'
check_file /etc/containerd/conf.d/10-container-host.toml '^ *SystemdCgroup = true$'
check_file /etc/systemd/system/containerd.service.d/10-container-host.conf '^\[Service\]$' '^LimitNOFILE=1048576$'
check_file /etc/systemd/journald.conf.d/60-container-host.conf '^\[Journal\]$' '^SystemMaxUse=1G$'
check_file /etc/docker/daemon.json '"log-driver": "json-file"' '"max-size": "10m"' '"max-file": "5"'

if [[ -f /etc/docker/daemon.json ]]; then
  if command -v python3 >/dev/null 2>&1; then
    if python3 -m json.tool /etc/docker/daemon.json >/dev/null 2>&1; then
      pass "/etc/docker/daemon.json is valid JSON"
    else
      fail "/etc/docker/daemon.json is not valid JSON (dockerd would refuse to start)"
    fi
  else
    echo "[validate] skipped: JSON syntax of /etc/docker/daemon.json (python3 not installed)"
  fi
  owner_mode=$(stat -c '%U:%G %a' /etc/docker/daemon.json)
  if [[ $owner_mode == "root:root 644" ]]; then
    pass "/etc/docker/daemon.json is root:root 644"
  else
    fail "/etc/docker/daemon.json is $owner_mode, expected root:root 644"
  fi
fi

if getent group ops >/dev/null; then
  pass "group ops exists"
else
  fail "group ops does not exist"
fi

if [[ -e /tmp/isobuild-docker-daemon.json ]]; then
  fail "/tmp/isobuild-docker-daemon.json was left behind (the install step should have moved it)"
else
  pass "no leftover /tmp/isobuild-docker-daemon.json"
fi

if [[ -e /usr/sbin/policy-rc.d ]] && grep -q 'isobuild install-runtime.sh' /usr/sbin/policy-rc.d; then
  fail "/usr/sbin/policy-rc.d from install-runtime.sh was left behind (services would never start)"
else
  pass "no leftover policy-rc.d from install-runtime.sh"
fi

if ((failures > 0)); then
  echo "[validate] linux-container-host validation failed: $failures check(s) failed (see FAILED lines above)" >&2
  exit 1
fi
echo "[validate] linux-container-host validation passed"
