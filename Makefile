# One-line targets over cargo xtask; README explains each.
.PHONY: e2e test test-engine ci engine engine-down base-image clean-context certs doctor bench

# The engine `make engine` makes answer (E2E_ENGINE=...): 20.10 (Debian 12's docker.io), 28
# (Engine 28 with buildx bake), 28-containerd (its containerd image store) or podman (Podman 5);
# unset, whatever engine answers already, else 20.10.
export E2E_ENGINE

# The main job on a fresh machine: engine first, then the e2e run of the bundled stack.
e2e: engine
	cargo xtask e2e

# The whole test suite on a fresh machine: engine and base image first, then everything CI checks.
test: engine base-image
	cargo xtask ci

# What depends on the engine (the Docker-backed tests and the e2e run), on E2E_ENGINE's engine.
test-engine: engine base-image
	cargo xtask ci --engine-only

ci:
	cargo xtask ci

# Install and start E2E_ENGINE's engine and Compose v2 unless they answer already.
engine:
	@bash .ci/engine

# Stop what `make engine` started (and start again a host dockerd it stopped).
engine-down:
	@bash .ci/engine down

# debian:bookworm-slim made with debootstrap (no registry): the adoption fixture builds FROM it.
base-image: engine
	@bash .ci/debian-base

clean-context:
	cargo xtask clean-context

certs:
	cargo xtask certs

doctor:
	cargo xtask doctor

bench:
	cargo xtask bench --quick
