# Quick start: `make start` runs the system, `make test` runs every test. Both install what is missing
# first (npm packages, the pinned Temporal binaries, and for tests the Debian packages they need).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# better-sqlite3 compiles from source offline; node-gyp needs the local Node headers, not a download.
export npm_config_nodedir := $(shell [ -d /usr/include/node ] && echo /usr)

.PHONY: help install install-server start cluster test test-suites test-cluster-suite check test-deps test-deps-debian test-deps-python test-images bench guest-images tempest

help:
	@echo "make start   run the system (Temporal dev server + Web UI, conductor, scheduler, compute workers)"
	@echo "             COMPUTE_DRIVER=qemu make start: the same on real QEMU guests (fleet/qemu.json)"
	@echo "make cluster run it as on many machines (PostgreSQL, the Temporal services apart, mTLS, replicated workers)"
	@echo "make test    install everything and run lint, typecheck, the whole test suite and the fault suite"
	@echo "make bench   run the benchmarks"
	@echo "make tempest run Tempest's compute API tests against the stack (test/tempest/include.txt)"

# `npm ci`: exactly the lock file, which records every platform's optional packages (the lock check
# in test/unit/deploy/lock-file.test.ts keeps it in step with package.json).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

.tools/temporal/bin/temporal: scripts/install-temporal.sh
	bash scripts/install-temporal.sh

install: node_modules/.installed .tools/temporal/bin/temporal

# The Temporal server, its SQL tool and the Web UI server, built from the Go module proxy (pinned).
install-server: scripts/install-temporal-server.sh
	bash scripts/install-temporal-server.sh

# The real guests' images (kernel, initramfs, qcow2 bases) from Debian packages, once, into a cache;
# as root the script installs QEMU first (qemu-system-x86, qemu-utils, busybox-static).
guest-images:
	@if [ -f scripts/build-guest-images.sh ]; then bash scripts/build-guest-images.sh; \
	else echo "make: COMPUTE_DRIVER=qemu needs scripts/build-guest-images.sh, missing from this checkout" >&2; exit 1; fi

# COMPUTE_DRIVER=qemu make start: the images first. Ctrl-C leaves the guests running (a hypervisor's
# guests outlive nova-compute); the next start re-adopts them; `npm run guests -- stop-all` stops them.
start: install $(if $(filter qemu,$(COMPUTE_DRIVER)),guest-images)
	npm start

cluster: install install-server
	npm run cluster

# The Debian packages one after the other (dpkg's lock), the Python venvs side by side (each its own
# folder under .tools/; mostly downloads and unpacking).
test-deps: test-deps-debian test-deps-python

test-deps-debian:
	bash scripts/install-test-deps.sh
	bash scripts/install-rabbitmq.sh

test-deps-python:
	@pids=(); for s in install-openstack-tools install-tempest install-schemathesis install-oslo-listener; do \
	  bash scripts/$$s.sh & pids+=($$!); done; rc=0; for p in "$${pids[@]}"; do wait "$$p" || rc=1; done; exit $$rc

# The real guests' images once the Debian packages (QEMU, busybox-static) are there.
test-images: test-deps-debian
	bash scripts/build-guest-images.sh

check: install
	npm run typecheck
	npm run lint
	npm run format:check
	npm run bundle:check

# The installs run beside each other and beside `make check` (about 3 minutes one after another from a
# fresh clone: the venvs, the images, npm ci and the Temporal binaries); each target's output is kept together.
# scripts/timed.sh prints how long each phase took (`timed: … took N s`).
test:
	$(MAKE) --no-print-directory test-suites
	$(MAKE) --no-print-directory test-cluster-suite

# `make test` in two parts, so that .ci/run can run the cluster suite beside Tempest.
test-suites:
	bash scripts/timed.sh "installs and make check" $(MAKE) --no-print-directory -j4 --output-sync=target check test-deps test-images
	@# A failed phase ends its output with its failed tests, a few lines each (scripts/test-failures.ts).
	@# `npm test` but its real guests, which run beside the fault suite below.
	bash scripts/timed.sh "npm test but the guests" bash scripts/with-test-services.sh \
	  npx vitest run --project unit --project temporal --project notifications \
	  || { npx tsx scripts/test-failures.ts test-artifacts/vitest.json; exit 1; }
	@# The server build (started in the background by .ci/run) is waited for here: the fault suite's
	@# (and the guests') waits want the cores.
	bash scripts/timed.sh "waiting for the server build" $(MAKE) install-server
	bash scripts/timed.sh "the guests beside the fault suite" bash scripts/guests-beside-faults.sh
	bash scripts/timed.sh "the fault suite's timed files" env VITEST_JSON=test-artifacts/vitest-faults-timed.json \
	  npx vitest run --config vitest.faults.config.mts --project faults-timed \
	  || { npx tsx scripts/test-failures.ts test-artifacts/vitest-faults-timed.json; exit 1; }

test-cluster-suite:
	bash scripts/timed.sh "the cluster suite" npm run test:cluster \
	  || { npx tsx scripts/test-failures.ts test-artifacts/vitest-cluster.json; exit 1; }

bench: install
	npm run bench:scheduler
	npm run bench:e2e
	npm run bench:scale

# Tempest's compute API tests (pinned, .tools/tempest) against the stack as `make start` runs it
# (fake driver, a temporary data dir, free loopback ports); docs/tempest.md.
tempest: install
	bash scripts/run-tempest.sh
