# Space Sync — the commands. `make run` starts the local stack on the
# embedded defaults; `make test` runs every check and test.

export GOTOOLCHAIN := go1.27.3
GO        ?= go
PKGS      := ./shared/... ./cloud-app/... ./dc-app/... ./devstack/...
STATICCHECK_VERSION := v0.8.2
GOBIN     := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck

.PHONY: all run build deps test vet staticcheck vulncheck gotest bench fuzz clean tidy

all: build

## run: build and start the whole local stack (simulators, cloud-app, dc-app)
run: build
	./bin/devstack

## build: compile the services and the local stack into ./bin
build:
	@mkdir -p bin
	$(GO) build -trimpath -o bin/cloud-app ./cloud-app
	$(GO) build -trimpath -o bin/dc-app ./dc-app
	$(GO) build -trimpath -o bin/devstack ./devstack/cmd/devstack

## deps: install the Node oracles (npm jose, atlassian-jwt) and Go modules
deps: interop/node_modules/.package-lock.json
	$(GO) mod download -x >/dev/null 2>&1 || true

interop/node_modules/.package-lock.json: interop/package.json interop/package-lock.json
	cd interop && npm ci --no-audit --no-fund

## test: vet, staticcheck and every module's tests (Postgres and Chromium are
## provided by the tests themselves: a throwaway cluster, Debian's chromium)
test: deps vet staticcheck vulncheck gotest

vet:
	$(GO) vet $(PKGS)

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) $(PKGS)

## vulncheck: govulncheck against a local copy of the Go vulnerability database
vulncheck:
	bash scripts/vulncheck.sh

gotest:
	$(GO) test -count=1 -timeout 30m $(PKGS)

## bench: the recorded benchmarks (see BENCHMARKS.md): the token and Connect
## micro-benchmarks, then the load driver (devstack/cmd/loadgen) on throwaway
## Postgres clusters, writing BENCHMARKS.load.md (about 12 minutes in all).
## BENCH_QUICK=1 is a smoke run of the same (4-5 minutes): one pass of the
## micro-benchmarks and every load scenario briefly; its report goes to
## bin/BENCHMARKS.load.quick.md and is not a measurement.
BENCH_QUICK ?=
LOADGEN_FLAGS ?= -pgss -profile
ifeq ($(BENCH_QUICK),)
BENCH_MICRO := -count 5
BENCH_LOAD  := -out BENCHMARKS.load.md
else
BENCH_MICRO := -count 1 -benchtime 200ms
BENCH_LOAD  := -quick -out bin/BENCHMARKS.load.quick.md
endif
bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem $(BENCH_MICRO) ./shared/token/ ./cloud-app/internal/connect/
	$(GO) test -count=1 -run '^TestJoseTiming$$' -v ./shared/token/ -jose-timing=20000
	$(GO) run ./devstack/cmd/loadgen -bin bin $(BENCH_LOAD) $(LOADGEN_FLAGS)

## fuzz: each fuzz target for FUZZTIME (default 10m)
FUZZTIME ?= 10m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) -parallel 1 ./shared/token/
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) -parallel 1 ./shared/token/
	$(GO) test -run '^$$' -fuzz '^FuzzUpload$$' -fuzztime $(FUZZTIME) -parallel 1 ./dc-app/internal/web/

tidy:
	cd shared && $(GO) mod tidy
	cd cloud-app && $(GO) mod tidy
	cd dc-app && $(GO) mod tidy
	cd devstack && $(GO) mod tidy

clean:
	rm -rf bin
