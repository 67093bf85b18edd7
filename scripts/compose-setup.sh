#!/usr/bin/env bash
# Creates what docker-compose.yml needs and must not be committed, under .work/compose/ (idempotent):
# the test VM's SSH key pair, and a random Azurite account key shared by the azurite and isobuild services.
# The private key is made readable by the agent's user in the container (uid 1000, `node` in the image),
# and by nobody else, because compose mounts secret files as they are on the host.
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)/.work/compose"
AGENT_UID=1000
mkdir -p "$dir"
chmod 700 "$dir"
[ -s "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C isobuild-compose -f "$dir/id_ed25519"
chmod 0400 "$dir/id_ed25519"
if [[ $(id -u) -eq 0 ]]; then
  chown "$AGENT_UID:$AGENT_UID" "$dir/id_ed25519"
elif [[ $(id -u) -ne $AGENT_UID ]]; then
  if podman unshare true 2>/dev/null; then
    # Rootless podman: uid 1000 in the container is a subordinate uid on the host.
    podman unshare chown "$AGENT_UID:$AGENT_UID" "$dir/id_ed25519"
  else
    echo "compose-setup: the agent container runs as uid $AGENT_UID and cannot read $dir/id_ed25519 (owned by uid $(id -u)); run this script as root, or as uid $AGENT_UID" >&2
    exit 1
  fi
fi
if [ ! -s "$dir/azurite.env" ] || [ ! -s "$dir/isobuild.env" ]; then
  key="$(head -c 32 /dev/urandom | base64 -w0)"
  umask 077
  printf 'AZURITE_ACCOUNTS=devstoreaccount1:%s\n' "$key" > "$dir/azurite.env"
  printf 'ISOBUILD_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;BlobEndpoint=http://azurite:10000/devstoreaccount1;\n' "$key" > "$dir/isobuild.env"
fi
echo "docker-compose inputs are in $dir"
