# Quick start: `make demo` and `make test` work from a clean clone on Debian bookworm (as root).
# Each target installs what is missing first; every install step is idempotent.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# rpm: the SBOM tests check the rpm inventory against a real rpm database.
APT_PACKAGES := packer openssh-server openssh-client sudo iproute2 util-linux procps socat haproxy iperf3 hyperfine python3-winrm docker-compose rpm
# The OCI engine for `make images`, `make compose-demo` and the container tests when no Docker daemon answers.
CONTAINER_PACKAGES := podman buildah runc netavark aardvark-dns iptables fuse-overlayfs slirp4netns uidmap debootstrap curl
# The test VM is a copy-on-write view of this machine: packages the public quickstart templates install must be here.
TEST_VM_PACKAGES := unattended-upgrades
NODE_STAMP := node_modules/.package-lock.stamp

.PHONY: help deps apt-deps node-deps build demo test lint typecheck bench bench-containers images compose-demo clean

help:
	@echo "make demo   validate and render the example templates under images/"
	@echo "make test   install what is missing, lint, type-check and run the whole test suite"
	@echo "make bench  run the benchmarks under bench/ (needs root for the build benchmark)"
	@echo "make images        build the agent, proxy, test VM and Azurite images (Docker, or podman)"
	@echo "make compose-demo  a real build through docker-compose.yml's containers, then tear it all down"

deps: apt-deps node-deps

apt-deps:
	@bash scripts/install-apt-deps.sh $(APT_PACKAGES) $(CONTAINER_PACKAGES) $(TEST_VM_PACKAGES)

# npm ci only when package-lock.json changed since the last install.
node-deps: $(NODE_STAMP)
$(NODE_STAMP): package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $@

build: node-deps
	npm run --silent build

demo: deps build
	@node scripts/demo.mjs

lint: node-deps
	npm run --silent lint

typecheck: node-deps
	npm run --silent typecheck

test: deps build lint typecheck
	npx vitest run

bench: deps build
	node bench/template-bench.mjs
	node bench/build-bench.mjs
	node bench/relay-bench.mjs
	node bench/log-bench.mjs
	node bench/resume-bench.mjs
	node bench/winrm-upload-bench.mjs
	node bench/sbom-bench.mjs
	npx vitest run --config bench/vitest.config.ts

# Container start and build times against the host (needs the images, so it is not part of `make bench`).
bench-containers: images build
	node bench/container-bench.mjs

# ENGINE, PACKER_SOURCE and EXTRA_CA_CERTS choose the engine, Packer and a CA bundle (scripts/images/build-images.sh).
images: apt-deps
	@bash scripts/images/build-images.sh

compose-demo: images
	@bash scripts/compose-demo.sh

clean:
	rm -rf dist .work coverage
