#!/bin/sh
# Host keys are made per container, then sshd runs in the foreground as PID 1's child (logs to stderr).
set -eu
ssh-keygen -A >/dev/null
if [ ! -s /etc/isobuild/authorized_keys ]; then
  echo "testvm: mount the public key at /etc/isobuild/authorized_keys (see docker-compose.yml)" >&2
  exit 2
fi
exec /usr/sbin/sshd -D -e
