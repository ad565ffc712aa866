# One-line targets over cargo xtask; README explains each.
.PHONY: e2e test ci engine clean-context certs doctor bench

# The main job on a fresh machine: engine first, then the e2e run of the bundled stack.
e2e: engine
	cargo xtask e2e

# The whole test suite on a fresh machine: engine first, then everything CI checks.
test: engine
	cargo xtask ci

ci:
	cargo xtask ci

# Install and start a Docker engine and Compose v2 when none answers.
engine:
	@bash .ci/engine >/dev/null

clean-context:
	cargo xtask clean-context

certs:
	cargo xtask certs

doctor:
	cargo xtask doctor

bench:
	cargo xtask bench --quick
