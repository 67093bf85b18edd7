#!/bin/bash
# isobuild example: Linux baseline for Debian/Ubuntu images.
#
# Runs as the (non-root) build user; every change that needs root goes through sudo.
# Idempotent: files are rewritten only when their content differs, the group is created only once.
# Safe offline: package installation is best effort and never fails the build.
set -euo pipefail

log() { echo "[baseline] $*"; }

SUDO=sudo
if [[ $(id -u) -eq 0 ]]; then SUDO=""; fi

# Installs $2 as $1 (root:root, mode $3) unless the file already has exactly that content.
install_file() {
  local dest=$1 content=$2 mode=$3 tmp
  tmp=$(mktemp)
  printf '%s\n' "$content" >"$tmp"
  if $SUDO test -f "$dest" && $SUDO cmp -s "$tmp" "$dest"; then
    log "unchanged: $dest"
  else
    $SUDO install -D -o root -g root -m "$mode" "$tmp" "$dest"
    log "wrote: $dest"
  fi
  rm -f "$tmp"
}

log "starting on $(hostname) ($( (. /etc/os-release && echo "${PRETTY_NAME:-unknown OS}") 2>/dev/null || echo "unknown OS"), kernel $(uname -r))"

# 1. Baseline packages (best effort: build VMs without internet access still get the rest).
PACKAGES=(auditd unattended-upgrades)
if command -v apt-get >/dev/null 2>&1; then
  APT_OPTS=(-y -q -o DPkg::Lock::Timeout=300 -o Acquire::Retries=2 -o Acquire::http::Timeout=30)
  log "apt-get update"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" update ||
    echo "warning: apt-get update failed (no network?); continuing with the package lists already on the VM"
  log "apt-get install ${PACKAGES[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install --no-install-recommends "${PACKAGES[@]}" ||
    echo "warning: could not install ${PACKAGES[*]} (no network?); continuing without them"
else
  echo "warning: apt-get not found; skipping package installation"
fi

# 2. Login banner.
install_file /etc/motd "$(cat <<'BANNER'
******************************************************************
*  Authorized use only. Activity on this system may be monitored *
*  and recorded. Built from the isobuild linux-baseline image.   *
******************************************************************
BANNER
)" 0644

# 3. Directory for isobuild settings (baseline.conf is installed by a later step).
$SUDO install -d -o root -g root -m 0755 /etc/isobuild
log "ensured: /etc/isobuild"

# 4. Kernel and network hardening.
install_file /etc/sysctl.d/60-baseline.conf "# Managed by the isobuild linux-baseline image. Do not edit by hand.
net.ipv4.conf.all.accept_redirects = 0
net.ipv4.conf.default.accept_redirects = 0
net.ipv4.conf.all.send_redirects = 0
net.ipv4.conf.default.send_redirects = 0
net.ipv4.conf.all.accept_source_route = 0
net.ipv4.conf.default.accept_source_route = 0
net.ipv4.conf.all.log_martians = 1
net.ipv4.tcp_syncookies = 1
net.ipv6.conf.all.accept_redirects = 0
net.ipv6.conf.default.accept_redirects = 0
kernel.dmesg_restrict = 1
kernel.randomize_va_space = 2
fs.protected_hardlinks = 1
fs.protected_symlinks = 1
fs.suid_dumpable = 0" 0644
log "applying /etc/sysctl.d/60-baseline.conf"
$SUDO sysctl -q -p /etc/sysctl.d/60-baseline.conf ||
  echo "warning: some sysctl values could not be applied now (container or restricted kernel?); they apply at next boot"

# 5. SSH daemon hardening. Only the drop-in is written: sshd is NOT restarted, so the running build
#    connection is untouched; the settings take effect when VMs created from the image boot.
install_file /etc/ssh/sshd_config.d/60-baseline.conf "# Managed by the isobuild linux-baseline image. Do not edit by hand.
PermitRootLogin no
PermitEmptyPasswords no
X11Forwarding no
MaxAuthTries 4
LoginGraceTime 60
ClientAliveInterval 300
ClientAliveCountMax 3" 0644
if ! $SUDO grep -qsE '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\.d/' /etc/ssh/sshd_config; then
  echo "warning: /etc/ssh/sshd_config does not include /etc/ssh/sshd_config.d/*.conf; the SSH drop-in has no effect"
fi

# 6. Operations group (members get no extra rights here; grant them in your own sudoers policy).
if getent group ops >/dev/null; then
  log "unchanged: group ops exists"
else
  $SUDO groupadd --system ops
  log "created: group ops"
fi

log "done"
