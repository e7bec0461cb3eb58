# The two commands a new user needs: `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test bench fmt-check clippy linted-build unit-and-integration lint-infra lint-asl tools vectors fmt

## Start the local stack and send it the signed sample events from events/.
demo:
	bash scripts/demo.sh

## Everything CI runs: format, lints, template lint, all tests (AWS adapters against moto's server).
## The pinned tools install in the background while the workspace compiles: on
## 2 cores the downloads and the compile overlap (about 2 minutes on a cold clone).
## Clippy lints every target as it is compiled for the tests (see
## scripts/clippy-rustc.sh): the same lints as `make clippy`, one build.
test: export RUSTC_WORKSPACE_WRAPPER := $(CURDIR)/scripts/clippy-rustc.sh
test: export CLIPPY_DRIVER := $(shell rustc --print sysroot)/bin/clippy-driver
test:
	@mkdir -p .tools; bash scripts/install-tools.sh >.tools/install.log 2>&1 & installing=$$!; \
	$(MAKE) --no-print-directory fmt-check linted-build; checked=$$?; \
	if ! wait $$installing; then cat .tools/install.log; exit 1; fi; \
	exit $$checked
	$(MAKE) --no-print-directory tools lint-infra lint-asl unit-and-integration

## The figures in BENCHMARKS.md, beside stripe-python, stripe-node and boto3 (installs them pinned).
bench:
	bash bench/run.sh

## Pinned Python tools (moto, cfn-lint, SAM CLI, stripe-python) into .venv/.
tools:
	bash scripts/bootstrap.sh

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Every target compiled under RUSTC_WORKSPACE_WRAPPER (set by `test`): Clippy's lints, warnings as errors.
## What --all-targets covers but --benches: there are no benches, and it would
## build each binary's main.rs a second time as a bench harness (no tests in
## any; about 70 s on 2 cores).
linted-build:
	$(CARGO) build --workspace --lib --bins --tests --examples --locked

## Every target with tests (`test = true`): the libraries and the integration
## binary. The binaries' main.rs hold none (`test = false`), and clippy
## checks them with --all-targets.
unit-and-integration:
	bash scripts/with-moto.sh bash scripts/test-summary.sh --workspace --tests --locked

lint-infra:
	bash scripts/lint-infra.sh

## asl-validator and statelint (both pinned, installed by the script) on infra/statemachine/.
lint-asl:
	bash scripts/lint-asl.sh

fmt:
	$(CARGO) fmt --all

## Regenerate the signature vectors with stripe-python (pinned in scripts/requirements-dev.txt).
vectors: tools
	.venv/bin/python scripts/stripe-vectors/generate.py > shared/testdata/stripe-signature-vectors.json
