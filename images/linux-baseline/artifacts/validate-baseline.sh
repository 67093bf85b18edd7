#!/bin/bash
# isobuild example: in-VM validation for the linux-baseline image.
# Checks that every part of the baseline is in place; lists all failures, then exits 1 if there were any.
# Read-only: changes nothing on the VM.
set -euo pipefail

failures=0
pass() { echo "[validate] ok: $*"; }
fail() {
  echo "[validate] FAILED: $*" >&2
  failures=$((failures + 1))
}

# check_file PATH [PATTERN]: PATH is a readable regular file (containing PATTERN, an extended regex).
check_file() {
  local path=$1 pattern=${2:-}
  if [[ ! -f $path || ! -r $path ]]; then
    fail "$path is missing or unreadable"
  elif [[ -n $pattern ]] && ! grep -qE -- "$pattern" "$path"; then
    fail "$path does not contain /$pattern/"
  else
    pass "$path${pattern:+ contains /$pattern/}"
  fi
}

check_file /etc/motd 'Authorized use only'
check_file /etc/isobuild/baseline.conf '^BASELINE_NAME=linux-baseline$'
check_file /etc/sysctl.d/60-baseline.conf '^net\.ipv4\.conf\.all\.accept_redirects = 0$'
check_file /etc/ssh/sshd_config.d/60-baseline.conf '^PermitRootLogin no$'
check_file /etc/image-build-info '^image_name=linux-baseline$'

if getent group ops >/dev/null; then
  pass "group ops exists"
else
  fail "group ops does not exist"
fi

if [[ -e /tmp/isobuild-baseline.conf ]]; then
  fail "/tmp/isobuild-baseline.conf was left behind (the install step should have moved it)"
else
  pass "no leftover /tmp/isobuild-baseline.conf"
fi

if ((failures > 0)); then
  echo "[validate] linux-baseline validation failed: $failures check(s) failed (see FAILED lines above)" >&2
  exit 1
fi
echo "[validate] linux-baseline validation passed"
