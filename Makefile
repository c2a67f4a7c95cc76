# govm: make run boots the demo VM, make test runs every test.
SHELL := /bin/bash
GO ?= go
BUILD := build
# govm's own heap is a few hundred KiB: with transparent huge pages set to
# "always" the kernel backs it with 2 MiB pages, and govm's resident size
# grows by 4 MiB for nothing. The runtime's disablethp setting keeps the
# Go heap on small pages (guest RAM still asks for huge pages itself).
# scripts/assets.sh and the CLI tests build govm the same way.
export GOVM_LDFLAGS := -X=runtime.godebugDefault=disablethp=1

.PHONY: all build assets run check test unit e2e bench fuzz fuzz-seeds soak clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='$(GOVM_LDFLAGS)' -o govm ./cmd/govm
	CGO_ENABLED=0 $(GO) build -trimpath -o govm-net ./cmd/govm-net

# Kernel (Debian), u-root initramfs, static binaries and the nested L1
# initramfs, into build/ (see scripts/assets.sh).
assets:
	bash scripts/assets.sh

# Boot the demo VM: Debian's kernel with a u-root initramfs, 512M, 2 vCPUs.
# On a host whose KVM cannot run Linux (kvm_pvm, no VT-x/AMD-V) the same
# govm command runs inside a nested QEMU L1 guest, started by the tests'
# own launcher (internal/demo), and says so.
run: assets
	$(GO) run ./internal/demo

# The fast check before every commit (CONTRIBUTING.md): formatting, vet,
# staticcheck at a pinned version, and the unit and tiny-guest tests under
# the race detector (-short skips the Linux boots, which make test runs).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
check:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files need formatting:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) test -race -short -count=1 -timeout 10m ./...

# Every test: unit tests, tiny guests on this host's /dev/kvm, and the
# end-to-end Linux boots (directly, or nested where the host needs it).
test: assets
	GOVM_E2E_REQUIRED=1 $(GO) test -count=1 -timeout 45m ./...

unit:
	$(GO) test -count=1 ./...

# Every benchmark, and one table of govm against its peers (QEMU, gokvm,
# the host's own disk, the raw KVM_RUN loop), also as build/bench.json:
# the micro-benchmarks BENCHCOUNT times each (hot paths, exit round trip,
# start-up; the last two inside L1 when this host has no /dev/kvm), the
# boot, disk and network benchmarks once (each boots several times
# itself; nested under QEMU TCG where the host needs it).
BENCHCOUNT ?= 5
bench: assets
	@set -o pipefail; { \
		$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) $$($(GO) list ./... | grep -v /e2e) && \
		BENCHCOUNT=$(BENCHCOUNT) $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./e2e; \
	} | tee $(BUILD)/bench.txt
	$(GO) run ./internal/benchtable -json $(BUILD)/bench.json $(BUILD)/bench.txt

# SOAK boots each of govm and QEMU, alternating in the same nested L1s
# (unpinned unless GOVM_SOAK_PIN=1), each with disks and a NIC and
# checked; both failure rates by kind (not part of make test).
SOAK ?= 50
# Then CRASH_ROUNDS rounds of the crash-consistency test (default 100),
# and the scale matrix (1 to 64 vCPUs, 512M to 16G).
CRASH_ROUNDS ?= 100
soak: assets
	GOVM_SOAK=$(SOAK) GOVM_CRASH_ROUNDS=$(CRASH_ROUNDS) GOVM_SCALE=1 $(GO) test -count=1 -run '^(TestSoak|TestCrashConsistency|TestScale)$$' -v -timeout 6h ./e2e

# Each fuzz target for FUZZTIME (go test runs their seeds as tests), and a
# summary: execs and corpus growth per target (scripts/fuzz.sh; FUZZ_SAVE=1
# keeps the grown corpus in each package's testdata/fuzz).
FUZZTIME ?= 15m
FUZZ_TARGETS := virtio:FuzzVirtqueue virtio:FuzzBlkRequest virtio:FuzzNetTx virtio:FuzzPCITransport \
	virtio:FuzzFSRequest virtio:FuzzConsoleControl \
	boot:FuzzLoad devices:FuzzPorts usernet:FuzzParse usernet/server:FuzzDHCP cmd/govm:FuzzSpecs
fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh $(FUZZ_TARGETS)

# Records real drivers' requests in nested guests as seeds in
# virtio/testdata/fuzz (virtio.SeedRecorder, GOVM_DEBUG_SEEDS).
fuzz-seeds: assets
	GOVM_RECORD_SEEDS=1 $(GO) test -count=1 -run '^TestRecordSeeds$$' -v -timeout 30m ./e2e

clean:
	rm -rf $(BUILD) govm govm-net
