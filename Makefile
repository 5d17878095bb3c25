# autoheal: the two set-up commands are `make demo` and `make test` (README, Quick start).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
# Tests that build SDK clients must never probe the instance-metadata address (DESIGN.md §9).
export AWS_EC2_METADATA_DISABLED := true

.PHONY: help demo test fuzz lint fmt bench schema docs clean build-lambdas build-cli

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

demo: ## the built-in scenarios on the simulated fleet, autoheal vs asg-replace: table + .autoheal/demo/report.html
	@$(CARGO) run --quiet --locked -p autoheal -- demo --out .autoheal/demo

# Every state machine in the repository, checked by the reference validator from npm.
ASL_FILES := $(shell git ls-files '*.asl.json' 2>/dev/null)
ASL_VALIDATOR := tools/node_modules/.bin/asl-validator

$(ASL_VALIDATOR): tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund --loglevel=error
	touch $@

# The project's Python tools, from PyPI: moto 5.2.5 (the differential ASL suite) and cfn-lint
# (the synthesized CloudFormation template).
VENV := .venv
MOTO_SERVER := $(VENV)/bin/moto_server
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

$(MOTO_SERVER) $(VENV)/bin/cfn-lint:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5' 'cfn-lint==1.58.0'

test: $(ASL_VALIDATOR) $(MOTO_SERVER) $(VENV)/bin/cfn-lint ## every test: Rust suites, asl-validator, the runner against moto, SSM documents on fake hosts, the operator CLI against moto, CDK (tsc, jest, synth, cdk-nag, cfn-lint)
	$(CARGO) test --workspace --locked
	$(ASL_VALIDATOR) $(foreach f,$(ASL_FILES),--json-path $(f))
	$(CARGO) build --quiet --locked -p autoheal
	$(VENV)/bin/python tests/asl-differential/run.py --autoheal $(TARGET_DIR)/debug/autoheal --moto-server $(MOTO_SERVER)
	$(VENV)/bin/python tests/ssm/run.py --autoheal $(TARGET_DIR)/debug/autoheal
	$(CARGO) build --quiet --locked -p autoheal --features aws
	cp $(TARGET_DIR)/debug/autoheal $(TARGET_DIR)/debug/autoheal-operator
	$(VENV)/bin/python tests/operator-cli/run.py --autoheal $(TARGET_DIR)/debug/autoheal-operator --moto-server $(MOTO_SERVER)
	bash cdk/check.sh

# The proptest properties of tests/tests/fuzz.rs (every parser of untrusted or hand-written input)
# with 100,000 cases each instead of the 256 of `make test`.
fuzz: ## the fuzz properties (tests/tests/fuzz.rs) with 100,000 cases per parser, optimised
	AUTOHEAL_FUZZ_CASES=100000 $(CARGO) test --release --locked -p autoheal-tests fuzz:: -- --test-threads 2

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy -p autoheal --features aws --all-targets --locked -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

# cargo-lambda and zig (its linker) from PyPI, into the project's venv.
CARGO_LAMBDA := $(VENV)/bin/cargo-lambda
$(CARGO_LAMBDA):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'cargo-lambda==1.9.2' 'ziglang==0.15.2'

LAMBDA_ARCH ?= x86-64
build-lambdas: $(CARGO_LAMBDA) ## every Lambda bootstrap and zip into target/lambda/<name>/ (LAMBDA_ARCH=arm64 needs the aarch64 std)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --profile lambda-release --locked -p autoheal-lambdas --$(LAMBDA_ARCH) --output-format zip
	@for d in $(TARGET_DIR)/lambda/*/; do [ -f "$$d/bootstrap.zip" ] || continue; \
	  $(VENV)/bin/python -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$$d/bootstrap.zip" "$$d"; \
	  chmod +x "$$d/bootstrap"; echo "  built $$d (bootstrap, bootstrap.zip)"; done

build-cli: ## the operator CLI with the AWS commands (approve, deny, replay, worker, start, incidents --table): target/release/autoheal
	$(CARGO) build --release --locked -p autoheal --features aws
	@echo "  built $(TARGET_DIR)/release/autoheal (with AWS support)"

bench: build-lambdas ## measure, write bench/results.json, print a table (builds the Lambdas first)
	$(CARGO) build --quiet --locked --release -p autoheal-tests --bins
	$(TARGET_DIR)/release/bench-core bench/results.json
	$(TARGET_DIR)/release/bench-asl bench/results.json
	$(TARGET_DIR)/release/bench-sim bench/results.json
	python3 tools/lambda_bench.py bench/results.json

schema: ## regenerate ssm/diagnostics.schema.json from the Rust types
	AUTOHEAL_UPDATE_SCHEMA=1 $(CARGO) test --quiet --locked -p autoheal-core schema

docs: ## regenerate the generated tables in docs/
	AUTOHEAL_UPDATE_DOCS=1 $(CARGO) test --quiet --locked -p autoheal-tests fault_table

clean: ## remove build output and local state
	$(CARGO) clean
	rm -rf .autoheal
