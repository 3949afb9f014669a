# AMS: `make dev` runs the broker locally, `make test` runs every test.
SHELL := /bin/bash
GOROOT := $(shell go env GOROOT)
WRANGLER := node_modules/.bin/wrangler
PORT ?= 8787

.PHONY: dev build test test-unit test-e2e fuzz deploy dry-run deps check-compat bench clean

deps: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

build: build/app.wasm build/wasm_exec.js

build/app.wasm: $(shell find . -name '*.go' -not -path './node_modules/*') $(wildcard worker/site/*) go.mod go.sum
	GOOS=js GOARCH=wasm go build -trimpath -ldflags='-s -w' -o $@ ./cmd/broker

build/wasm_exec.js: $(GOROOT)/lib/wasm/wasm_exec.js
	cp $< $@

# Local secrets: random peppers, generated once, never committed.
.dev.vars:
	@umask 077; { \
	  echo "AMS_CREDENTIAL_PEPPER=$$(head -c 32 /dev/urandom | base64 | tr -d '=+/')"; \
	  echo "AMS_PERMISSIVE_TOKEN_PEPPER=$$(head -c 32 /dev/urandom | base64 | tr -d '=+/')"; \
	} > $@
	@echo "wrote .dev.vars with fresh local peppers"

dev: deps build .dev.vars
	$(WRANGLER) dev --port $(PORT) --persist-to .wrangler/state

test: test-unit test-e2e

# The client is used from several goroutines (the CLI reads and sends at
# once): its tests also run under the race detector (needs cgo and gcc).
test-unit:
	go test ./...
	CGO_ENABLED=1 go test -race ./client/... ./cmd/ams/...

test-e2e: deps build
	go test -tags e2e -count=1 -timeout 20m ./e2e/...

# Every fuzz target, each for FUZZTIME, starting from its committed corpus.
# Iteration counts, not durations: a short -fuzztime duration can end a run
# with a spurious "context deadline exceeded".
FUZZTIME ?= 100000x
fuzz:
	@set -e; for pkg in ./wire ./worker ./durable; do \
	  for target in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
	    go test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

dry-run: deps build
	$(WRANGLER) deploy --dry-run --outdir build/dist

deploy: deps build
	$(WRANGLER) deploy

# Benchmark against a plain-JS floor in the same run (see BENCHMARKS.md).
bench: deps build
	go run ./bench/cmd/amsbench $(BENCH_FLAGS)

# compatibility_date must not be newer than the workerd the pinned wrangler bundles.
check-compat: deps
	@workerd=$$(node_modules/.bin/workerd --version | awk '{print $$2}'); \
	compat=$$(sed -n 's/^compatibility_date = "\(.*\)"/\1/p' wrangler.toml); \
	echo "compatibility_date $$compat, bundled workerd $$workerd"; \
	[[ ! "$$compat" > "$$workerd" ]] || { echo "compatibility_date is newer than workerd"; exit 1; }

clean:
	rm -rf build/app.wasm build/wasm_exec.js build/dist
