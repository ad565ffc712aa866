# One-line targets over cargo xtask; README explains each.
.PHONY: e2e test ci engine base-image clean-context certs doctor bench

# The main job on a fresh machine: engine first, then the e2e run of the bundled stack.
e2e: engine
	cargo xtask e2e

# The whole test suite on a fresh machine: engine and base image first, then everything CI checks.
test: engine base-image
	cargo xtask ci

ci:
	cargo xtask ci

# Install and start a Docker engine and Compose v2 when none answers.
engine:
	@bash .ci/engine >/dev/null

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
