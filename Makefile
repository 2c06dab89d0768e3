# ResoMap. `make demo` runs the default sweep; `make test` runs every test.
# LIBTORCH=/path/to/libtorch builds the bridge against another libtorch (a
# PyTorch wheel's torch/ folder or a CUDA libtorch zip); default: Debian's.
SHELL := /bin/bash
LIBTORCH ?=
BUILD ?= build
GOBIN ?= $(shell go env GOPATH 2>/dev/null || echo $$HOME/go)/bin
export GOBIN


SHIM := $(BUILD)/libresomap.so
export RESOMAP_LIB := $(abspath $(SHIM))

.PHONY: all deps shim build test test-fast fuzz test-timing test-libtorch2 test-stack images certs chaos bench bench-train scale demo clean tools temporal-cli stop
all: shim build

# System packages a fresh Debian/Ubuntu machine needs (run as root, or with sudo).
deps:
	@bash scripts/install-deps.sh

shim: $(SHIM)
$(SHIM): torch/csrc/resomap.cpp torch/csrc/resomap.h scripts/build-bridge.sh
	bash scripts/build-bridge.sh $(BUILD) $(LIBTORCH)

BENCH_CPP := $(BUILD)/resomap-bench-cpp
$(BENCH_CPP): torch/csrc/bench_main.cpp torch/csrc/resomap.h scripts/build-bridge.sh
	BENCH=1 bash scripts/build-bridge.sh $(BUILD) $(LIBTORCH)

build:
	@mkdir -p $(BUILD)
	CGO_ENABLED=0 go build -o $(BUILD)/ ./...

tools:
	@bash scripts/install-tools.sh all

temporal-cli:
	@bash scripts/install-tools.sh temporal

test: deps shim tools
	CGO_ENABLED=0 go test -count=1 -timeout 80m ./...
	$(MAKE) --no-print-directory test-timing

# The quick loop (under 3 minutes on 2 cores): every pure-Go and
# single-process test; what needs a server, helper processes, Python or a
# long run says it is skipped (`make test` runs everything).
test-fast: deps shim
	CGO_ENABLED=0 go test -short -count=1 -timeout 10m ./...

# Tests that time trainings and so need the machine to themselves (under
# `go test ./...` other packages' tests load the cores): compute hours that
# do not depend on how trainings shared a worker.
test-timing: deps shim tools build
	CGO_ENABLED=0 go test -tags timing -count=1 -timeout 20m -v -run 'TestComputeHours' ./integration

# The fuzzers of every parser a spec or a data folder feeds, each for
# FUZZTIME (crashers land in the package's testdata/fuzz/ and are kept as
# regression tests that `make test` runs).
FUZZTIME ?= 60s
FUZZERS := ./pretrained:FuzzReadPth ./checkpoint:FuzzDecodeSafetensors ./dataset:FuzzDecodeIDX ./dataset:FuzzDecodeImage ./sweep:FuzzParseSpec
fuzz:
	@set -e; for f in $(FUZZERS); do \
		echo "== $${f#*:} ($${f%%:*}) for $(FUZZTIME)"; \
		CGO_ENABLED=0 go test -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime $(FUZZTIME) "$${f%%:*}"; \
	done

# The team stack's images, with no registry (root the first time: debootstrap).
images:
	@bash scripts/build-images.sh

# The secured stack's certificates (docker-compose.secure.yml): a CA, the
# Temporal server's and the clients' certificates in deploy/secrets.
certs:
	@bash scripts/make-certs.sh deploy/secrets

# The team stack for real: the images above, docker-compose.yml with
# docker-compose.local.yml on a project of its own, three worker containers
# through kills, partitions and restarts (root: docker).
test-stack: images build
	CGO_ENABLED=0 go test -tags stack -count=1 -timeout 40m -v ./integration/stack

# A long chaos soak (root: it fills a tmpfs): ADVERSARY_RUNS randomised
# workflow schedules, ORACLE_RUNS schedules of user operations checked
# against the report of a clean sweep of their union, then CHAOS_ROUNDS rounds of random worker kills and
# freezes, plus server, S3 and full-disk outages, on the file store and on
# S3; `make test` runs short versions of both.
# The soak's length: rounds of faults go on while the sweep trains
# (CHAOS_EPOCHS epochs of CHAOS_TRAIN_LIMIT images, four trainings).
CHAOS_ROUNDS ?= 1000
CHAOS_EPOCHS ?= 12
CHAOS_TRAIN_LIMIT ?= 60000
ADVERSARY_RUNS ?= 20000
ORACLE_RUNS ?= 20000
chaos: deps shim tools
	RESOMAP_ADVERSARY_RUNS=$(ADVERSARY_RUNS) CGO_ENABLED=0 go test -count=1 -timeout 60m -run 'TestAdversarialSchedules$$' -v ./workflows
	RESOMAP_ORACLE_RUNS=$(ORACLE_RUNS) CGO_ENABLED=0 go test -count=1 -timeout 120m -run 'TestReportMatchesACleanSweepWhateverUsersDid$$' -v ./report
	RESOMAP_CHAOS_ROUNDS=$(CHAOS_ROUNDS) RESOMAP_CHAOS_EPOCHS=$(CHAOS_EPOCHS) RESOMAP_CHAOS_TRAIN_LIMIT=$(CHAOS_TRAIN_LIMIT) \
		CGO_ENABLED=0 go test -count=1 -timeout 180m -run 'TestChaos$$' -v ./integration

# The trainer's tests against libtorch 2.6 (Debian 13, in a cached chroot; root).
test-libtorch2:
	@bash scripts/check-libtorch2.sh

# Figures, not pass/fail: trainer (Go vs C++ step loop), data path (cache
# builds vs torchvision/PIL, loader), store throughput, orchestration
# overhead of the default sweep and worker-death recovery.
bench: deps shim tools build $(BENCH_CPP)
	CGO_ENABLED=0 go run ./cmd/resomap-bench --cpp $(BENCH_CPP)
	bash scripts/bench-data.sh
	CGO_ENABLED=0 go test -run '^$$' -bench . -benchtime 1x ./store ./integration
	bash scripts/bench-train.sh

# ResoMap against the plain PyTorch script of the same training, over
# seeds: throughput ratio, slowest epoch, accuracy with a Welch interval
# (about 25 minutes on 2 cores; RESOMAP_BENCH_SEEDS=2 for a shorter run).
bench-train: deps shim build
	bash scripts/bench-train.sh

# What a training costs the orchestration as the sweep grows, on a real dev
# server (SCALE_N tiny trainings, default 2000; about 20 minutes on 2 cores).
scale: deps shim temporal-cli build
	bash scripts/scale.sh

demo: deps shim temporal-cli build
	@bash scripts/demo.sh

clean:
	rm -rf $(BUILD)

# Stops the dev server and worker that `make demo` left running.
stop:
	-@for p in state/worker.pid state/temporal.pid; do [ -f $$p ] && kill $$(cat $$p) 2>/dev/null; rm -f $$p; done; true
