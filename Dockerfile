# isobuild agent image: the `isobuild` CLI with Packer, as AIB runs it in the staging resource group (ACI).
#   make images                      # builds this and the other images with the engine that is there
#   docker build -t isobuild --build-arg PACKER_SOURCE=debian .
#   docker run --rm --read-only --tmpfs /tmp -v isobuild-work:/work --cap-drop ALL \
#     --security-opt no-new-privileges -v "$PWD/template.json:/work/template.json:ro" -e ISOBUILD_HOST=10.0.0.4 ... isobuild
# Configuration comes only from ISOBUILD_* environment variables and mounted secret files (see README).
# Build arguments: PACKER_SOURCE=hashicorp (PACKER_VERSION's release, checked against SHA256SUMS) or debian
# (Debian's packer package); NODE_VERSION; WINDOWS_UPDATE_PLUGIN_VERSION (empty: no plugin). Behind a TLS-
# inspecting proxy, pass its CA bundle as the build secret extra_ca (`--secret id=extra_ca,src=ca.pem`): it
# is used by npm, curl and Packer during the build and stored in no layer.
# Stop grace: give the container longer than isobuild's Packer kill grace (ISOBUILD_KILL_GRACE, default 15m),
# e.g. `docker stop -t 960` or `stop_grace_period: 16m`, so Packer can clean up after a cancel.
ARG NODE_VERSION=20.20.2

# --- deps: every npm dependency, from the lockfile ----------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /src
COPY package.json package-lock.json ./
# npm's cache is a cache mount shared by the builds (and kept in no layer); install scripts never run.
RUN --mount=type=secret,id=extra_ca --mount=type=cache,id=isobuild-npm,target=/root/.npm \
  if [ -s /run/secrets/extra_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/extra_ca; fi \
  && npm ci --ignore-scripts --no-audit --no-fund

# --- build: compile TypeScript to JavaScript -------------------------------------------------------------
FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY agent/src ./agent/src
COPY proxy/src ./proxy/src
RUN npx tsc -p tsconfig.build.json

# --- packer: HashiCorp's release checked against SHA256SUMS, or Debian's package ------------------------
FROM debian:bookworm-slim AS packer
ARG PACKER_SOURCE=hashicorp
ARG PACKER_VERSION=1.11.2
ARG TARGETARCH=amd64
COPY scripts/images/install-packer.sh /usr/local/sbin/install-packer
RUN --mount=type=secret,id=extra_ca install-packer "$PACKER_SOURCE" "$PACKER_VERSION" "$TARGETARCH"

# --- runtime: compiled JavaScript, production dependencies, Packer and tini --------------------------------
FROM node:${NODE_VERSION}-bookworm-slim
ARG WINDOWS_UPDATE_PLUGIN_VERSION=0.16.10
# tini is PID 1: it forwards SIGTERM to isobuild and reaps Packer's plugin processes.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tini \
  && rm -rf /var/lib/apt/lists/*
COPY --from=packer /usr/local/bin/packer /usr/local/bin/packer
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies from the npm cache the deps stage filled: no second download, and (unlike
# COPY --from of node_modules) a cache check that does not hash thousands of files on every build.
RUN --mount=type=secret,id=extra_ca --mount=type=cache,id=isobuild-npm,target=/root/.npm \
  if [ -s /run/secrets/extra_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/extra_ca; fi \
  && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund
RUN mkdir -p /work && chown node:node /work
USER node
# The windows-update plugin (for WindowsUpdate customizers) where this Packer can install plugins (≥ 1.8).
RUN --mount=type=secret,id=extra_ca,mode=0444 \
  if [ -z "$WINDOWS_UPDATE_PLUGIN_VERSION" ]; then echo "windows-update plugin: not installed (none asked for)"; \
  elif packer plugins install --help >/dev/null 2>&1; then \
    if [ -s /run/secrets/extra_ca ]; then \
      cat /etc/ssl/certs/ca-certificates.crt /run/secrets/extra_ca >/tmp/ca.pem && export SSL_CERT_FILE=/tmp/ca.pem; \
    fi; \
    packer plugins install github.com/rgl/windows-update "v${WINDOWS_UPDATE_PLUGIN_VERSION}"; status=$?; \
    rm -f /tmp/ca.pem; exit $status; \
  else echo "Packer $(packer version) cannot install plugins: WindowsUpdate customizers will be refused"; fi
# Last, so that a change to the sources rebuilds only this layer.
COPY --from=build /src/dist ./dist
ENV NODE_ENV=production \
    CHECKPOINT_DISABLE=1 \
    ISOBUILD_WORK_DIR=/work/runs \
    ISOBUILD_LOG_FORMAT=json
WORKDIR /work
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/agent/src/cli/main.js"]
CMD ["build"]
