#!/bin/sh
# Installs Packer as /usr/local/bin/packer in the agent image's packer stage, from one of two sources:
#   hashicorp  HashiCorp's release of PACKER_VERSION, checked against its SHA256SUMS (needs releases.hashicorp.com)
#   debian     Debian's packer package from the image's apt mirror (bookworm: 1.6.6, no external plugins)
# An extra CA bundle for TLS-inspecting networks may be given as the build secret extra_ca.
set -eu
source="$1" version="$2" arch="$3"
case "$source" in
hashicorp)
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends ca-certificates curl unzip >/dev/null
  ca=/etc/ssl/certs/ca-certificates.crt
  if [ -s /run/secrets/extra_ca ]; then
    cat "$ca" /run/secrets/extra_ca >/tmp/ca.pem
    ca=/tmp/ca.pem
  fi
  cd /tmp
  url="https://releases.hashicorp.com/packer/${version}"
  zip="packer_${version}_linux_${arch}.zip"
  curl --cacert "$ca" -fsSLO "$url/$zip"
  curl --cacert "$ca" -fsSLO "$url/packer_${version}_SHA256SUMS"
  grep " ${zip}\$" "packer_${version}_SHA256SUMS" | sha256sum -c -
  unzip -q "$zip" -d /usr/local/bin
  ;;
debian)
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends packer >/dev/null
  cp /usr/bin/packer /usr/local/bin/packer
  ;;
*)
  echo "PACKER_SOURCE must be hashicorp or debian, not \"$source\"" >&2
  exit 2
  ;;
esac
/usr/local/bin/packer version
