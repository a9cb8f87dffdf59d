# imgaudit — see README.md. `make test` installs missing Debian test tools.
GO       ?= go
BIN      ?= bin/imgaudit
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
# Packages worth the race detector: the concurrent readers, the scanner and
# the decoders (their memory gate).
RACE_PKGS ?= ./formats/... ./detectors/... ./scanner/... ./decode
# The registry reads an image's layers side by side, and a layer's files
# on workers; these of its tests cover that with the disks, errors, state
# and images around it (the whole package takes 90 s under the race
# detector, these about 25 s).
RACE_REGISTRY ?= TestLayersSideBySide|TestImagesSideBySide|TestScanWholeDecodes|TestJobTakesWithinPipelineCap|TestLayersShareTheGate|TestDisksInPlace|TestParallelFilesMatchSequential|TestStateRoundTripAndRuleChange|TestMultiArchIndexAndPlatform|TestBrokenLayerReportsOthers|TestLayerDiskNamesAreSealed|TestRegistryTagWhiteoutsAndLayerDigest
FUZZTIME ?= 5s
export IMGAUDIT_REQUIRE_TOOLS ?= 1

.PHONY: all build test unit lint race fuzz seeds bench scaling scaling-bins precision demo deps clean

all: build

# A static binary (no cgo): it runs on any Linux, and it starts without
# loading libc, 1.5 ms of every scan's 8 ms start-up.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/imgaudit

deps:
	@scripts/install-test-deps.sh
	@scripts/install-npm-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -count=1 -timeout 20m ./...

race:
	$(GO) test -count=1 -race -timeout 20m $(RACE_PKGS)
	$(GO) test -count=1 -race -timeout 20m -run '^($(RACE_REGISTRY))$$' ./registry

test: deps lint unit race

# Short smoke run of every fuzz target (go test -fuzz takes one target at a time).
fuzz:
	@scripts/fuzz-all.sh $(FUZZTIME)

# Rewrite the committed fuzz seed corpora (testdata/fuzz) from inputs the
# real tools make: the guestfs generators behind go:generate, then every
# TestWriteSeeds, which runs only with IMGAUDIT_WRITE_SEEDS=1. Seeds made
# of fresh keys, UUIDs and dates change each time. Loop devices need root.
seeds:
	$(GO) generate -run mkseed ./guestfs/...
	IMGAUDIT_WRITE_SEEDS=1 $(GO) test -count=1 -run '^TestWriteSeeds$$' ./...

bench:
	@scripts/bench.sh

# Throughput on 1, 2, 4, 8, 16 cores (scripts/scaling.sh). scaling-bins
# builds its two static binaries into bin/ for a machine without Go.
scaling:
	@scripts/scaling.sh

scaling-bins: build
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/genbench ./internal/benchdata/cmd/genbench

# False alarms on clean Debian images (debootstrap, cached under
# .cache/precision); a benchmark, not a test. Needs root and the apt mirror.
precision:
	@scripts/precision.sh

demo: build
	@echo "== imgaudit info testdata/demo/web01.qcow2"
	@$(BIN) info testdata/demo/web01.qcow2
	@echo
	@echo "== imgaudit scan testdata/demo/web01.qcow2"
	@$(BIN) scan --no-progress testdata/demo/web01.qcow2; code=$$?; \
	  echo; echo "exit code $$code (1 = findings at or above --fail-on)"; true

clean:
	rm -rf bin .cache
