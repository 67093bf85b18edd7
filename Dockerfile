# isobuild agent image: the `isobuild` CLI with Packer, as AIB runs it in the staging resource group (ACI).
#   docker build -t isobuild --build-arg PACKER_VERSION=1.11.2 .
#   docker run --rm -v "$PWD/template.json:/work/template.json:ro" -e ISOBUILD_HOST=10.0.0.4 ... isobuild
# Configuration comes only from ISOBUILD_* environment variables and mounted secret files (see README).
# Stop grace: give the container longer than isobuild's Packer kill grace (ISOBUILD_KILL_GRACE, default 15m),
# e.g. `docker stop -t 960` or `stop_grace_period: 16m`, so Packer can clean up after a cancel.

# --- build: compile TypeScript to JavaScript -------------------------------------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY agent/src ./agent/src
COPY proxy/src ./proxy/src
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --no-audit --no-fund

# --- packer: a pinned Packer release, checked against HashiCorp's SHA256SUMS ------------------------------
FROM debian:bookworm-slim AS packer
ARG PACKER_VERSION=1.11.2
ARG TARGETARCH=amd64
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl unzip \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /tmp/packer
RUN curl -fsSLO "https://releases.hashicorp.com/packer/${PACKER_VERSION}/packer_${PACKER_VERSION}_linux_${TARGETARCH}.zip" \
  && curl -fsSLO "https://releases.hashicorp.com/packer/${PACKER_VERSION}/packer_${PACKER_VERSION}_SHA256SUMS" \
  && grep " packer_${PACKER_VERSION}_linux_${TARGETARCH}.zip\$" "packer_${PACKER_VERSION}_SHA256SUMS" | sha256sum -c - \
  && unzip -q "packer_${PACKER_VERSION}_linux_${TARGETARCH}.zip" -d /usr/local/bin \
  && /usr/local/bin/packer version

# --- runtime: compiled JavaScript, production dependencies, Packer and tini --------------------------------
FROM node:20-bookworm-slim
ARG WINDOWS_UPDATE_PLUGIN_VERSION=0.16.10
# tini is PID 1: it forwards SIGTERM to isobuild and reaps Packer's plugin processes.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tini \
  && rm -rf /var/lib/apt/lists/*
COPY --from=packer /usr/local/bin/packer /usr/local/bin/packer
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
RUN mkdir -p /work && chown node:node /work
USER node
# The windows-update plugin (for WindowsUpdate customizers) where this Packer can install plugins (≥ 1.8).
RUN if packer plugins install --help >/dev/null 2>&1; then \
      packer plugins install github.com/rgl/windows-update "v${WINDOWS_UPDATE_PLUGIN_VERSION}"; \
    else echo "Packer $(packer version) cannot install plugins: WindowsUpdate customizers will be refused"; fi
ENV NODE_ENV=production \
    CHECKPOINT_DISABLE=1 \
    ISOBUILD_WORK_DIR=/work/runs \
    ISOBUILD_LOG_FORMAT=json
WORKDIR /work
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/agent/src/cli/main.js"]
CMD ["build"]
