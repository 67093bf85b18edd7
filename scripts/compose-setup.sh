#!/usr/bin/env bash
# Creates what docker-compose.yml needs and must not be committed, under .work/compose/ (idempotent):
# the test VM's SSH key pair, and a random Azurite account key shared by the azurite and isobuild services.
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)/.work/compose"
mkdir -p "$dir"
chmod 700 "$dir"
[ -s "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C isobuild-compose -f "$dir/id_ed25519"
if [ ! -s "$dir/azurite.env" ] || [ ! -s "$dir/isobuild.env" ]; then
  key="$(head -c 32 /dev/urandom | base64 -w0)"
  umask 077
  printf 'AZURITE_ACCOUNTS=devstoreaccount1:%s\n' "$key" > "$dir/azurite.env"
  printf 'ISOBUILD_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;BlobEndpoint=http://azurite:10000/devstoreaccount1;\n' "$key" > "$dir/isobuild.env"
fi
echo "docker-compose inputs are in $dir"
