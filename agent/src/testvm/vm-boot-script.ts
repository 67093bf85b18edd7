/**
 * The shell script that becomes the test VM: it runs as root inside fresh network, mount, PID, UTS and IPC
 * namespaces, builds a copy-on-write root (an overlay over the host's /) so nothing written in the VM reaches
 * the host, adds the non-root admin user with passwordless sudo, and execs sshd as the VM's only service.
 * When the namespaces' first process dies, the kernel removes every process and mount the VM had.
 */

export interface BootScriptOptions {
  readonly stateDir: string;
  readonly hostname: string;
  readonly user: string;
  /**
   * A directory tree copied into the VM's root before it starts (the Azure Linux agent). It is copied
   * into the upper layer rather than stacked as a lower one: overlayfs refuses a lower layer inside `/`.
   */
  readonly preload?: string;
}

export function vmBootScript(options: BootScriptOptions): string {
  const { stateDir, hostname, user, preload } = options;
  return `set -eu
S='${stateDir}'
R="$S/root"
mount --make-rprivate /
${preload ? `cp -a '${preload}/.' "$S/upper/"\n` : ''}mount -t overlay isobuild-vm -o "lowerdir=/,upperdir=$S/upper,workdir=$S/overlay-work" "$R"
mount -t proc proc "$R/proc"
# Kernel-wide sysctls (kernel.*, fs.*) would reach the host: the VM sees /proc/sys read-only.
mount --bind "$R/proc/sys" "$R/proc/sys" && mount -o remount,bind,ro "$R/proc/sys"
mount -t sysfs -o ro sysfs "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mkdir -p "$R/run/sshd" "$R/etc/isobuild-vm"
hostname '${hostname}'
echo '${hostname}' > "$R/etc/hostname"
printf '127.0.1.1 %s\n' '${hostname}' >> "$R/etc/hosts"
cp "$S/ssh_host_ed25519_key" "$S/sshd_config" "$R/etc/isobuild-vm/"
chmod 600 "$R/etc/isobuild-vm/ssh_host_ed25519_key"
chroot "$R" /bin/sh -eu -c '
  getent passwd ${user} >/dev/null || useradd --create-home --shell /bin/bash ${user}
  usermod -p "*" ${user}                       # no password, but not locked: key login works
  printf "%s ALL=(ALL) NOPASSWD: ALL\\n" ${user} > /etc/sudoers.d/90-isobuild-vm
  chmod 440 /etc/sudoers.d/90-isobuild-vm
  install -d -m 700 -o ${user} -g ${user} /home/${user}/.ssh
'
install -m 600 "$S/authorized_key.pub" "$R/home/${user}/.ssh/authorized_keys"
chroot "$R" chown ${user}:${user} /home/${user}/.ssh/authorized_keys
exec chroot "$R" /usr/sbin/sshd -D -e -f /etc/isobuild-vm/sshd_config
`;
}

export function sshdConfig(user: string): string {
  return [
    'Port 22',
    'ListenAddress 0.0.0.0',
    'HostKey /etc/isobuild-vm/ssh_host_ed25519_key',
    'PidFile /run/sshd.pid',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'PermitRootLogin no',
    `AllowUsers ${user}`,
    'UsePAM no',
    'StrictModes yes',
    'MaxStartups 100:30:200',
    'Subsystem sftp internal-sftp',
    'LogLevel VERBOSE',
    '',
  ].join('\n');
}
