#!/bin/bash
# isobuild example: container host configuration for the linux-container-host image (Debian/Ubuntu).
#
# AIB runs scriptUri scripts as root; run by hand as another user, the script uses sudo.
# Writes configuration files only: it loads no kernel module, starts, restarts or enables no service and
# does not reload systemd. Everything written here takes effect when VMs created from the image boot.
# Idempotent: a file is rewritten only when its content differs, the group is created only once.
set -euo pipefail

log() { echo "[configure-host] $*"; }

SUDO=sudo
if [[ $(id -u) -eq 0 ]]; then SUDO=""; fi

HEADER="# Managed by the isobuild linux-container-host image. Do not edit by hand."

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

# 1. Kernel modules for container storage and bridged networking, loaded at boot by systemd-modules-load.
#    (Not loaded now: modprobe changes the running kernel, and the image only needs the file.)
install_file /etc/modules-load.d/container-host.conf "$HEADER
overlay
br_netfilter" 0644

# 2. Network and inotify settings for containers, applied at boot by systemd-sysctl (after the modules).
SYSCTL_FILE=/etc/sysctl.d/60-container-host.conf
install_file "$SYSCTL_FILE" "$HEADER
# Route traffic between container bridges and the outside.
net.ipv4.ip_forward = 1
# Let iptables (Docker, kube-proxy) see bridged container traffic; needs br_netfilter.
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
# Many containers watching files.
fs.inotify.max_user_watches = 524288
fs.inotify.max_user_instances = 8192" 0644
# Applying now is a bonus, not a requirement: it fails where /proc/sys is read-only (containers, sandboxes)
# and for the net.bridge keys until br_netfilter is loaded. -e skips keys this kernel does not know.
log "applying $SYSCTL_FILE"
if output=$($SUDO sysctl -e -q -p "$SYSCTL_FILE" 2>&1); then
  log "applied: $SYSCTL_FILE"
else
  echo "warning: some sysctl values could not be applied now; they apply when VMs created from the image boot"
  if [[ -n $output ]]; then
    while IFS= read -r line; do echo "  $line"; done <<<"$output"
  fi
fi

# 3. containerd: a main config that imports drop-ins, and the drop-in with this image's settings.
#    A config.toml that is not ours (e.g. shipped by the package) is kept once as config.toml.orig.
CONTAINERD_CONFIG=/etc/containerd/config.toml
CONTAINERD_MAIN="$HEADER
# Put settings in /etc/containerd/conf.d/*.toml instead of this file.
version = 2
imports = [\"/etc/containerd/conf.d/*.toml\"]"
if $SUDO test -f "$CONTAINERD_CONFIG" && ! $SUDO grep -qxF "$HEADER" "$CONTAINERD_CONFIG" &&
  ! $SUDO test -e "$CONTAINERD_CONFIG.orig"; then
  $SUDO cp -p "$CONTAINERD_CONFIG" "$CONTAINERD_CONFIG.orig"
  log "kept the previous $CONTAINERD_CONFIG as $CONTAINERD_CONFIG.orig"
fi
install_file "$CONTAINERD_CONFIG" "$CONTAINERD_MAIN" 0644
install_file /etc/containerd/conf.d/10-container-host.toml "$HEADER
version = 2

# Let systemd manage container cgroups, as the kubelet and Docker (daemon.json) do.
[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]
  SystemdCgroup = true" 0644

# 4. systemd drop-in for containerd: restart on failure, enough file descriptors for many containers.
install_file /etc/systemd/system/containerd.service.d/10-container-host.conf "$HEADER
[Service]
Restart=always
RestartSec=5
LimitNOFILE=1048576" 0644

# 5. journald size limits (container logs go to files, but the runtimes themselves log a lot).
install_file /etc/systemd/journald.conf.d/60-container-host.conf "$HEADER
[Journal]
SystemMaxUse=1G
SystemKeepFree=2G
SystemMaxFileSize=128M
MaxRetentionSec=1month" 0644

# 6. Operations group (members get no extra rights here; add them to the docker group or sudoers yourself).
if getent group ops >/dev/null; then
  log "unchanged: group ops exists"
else
  $SUDO groupadd --system ops
  log "created: group ops"
fi

log "done"
