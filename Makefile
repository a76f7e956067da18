# EdgeSBC. `make run` and `make test` are the two commands a fresh machine
# needs (Debian with Go); each installs what it needs by itself.
GO      ?= go
BIN     := bin
PKGS    := ./...

.PHONY: all build install run test test-long test-unit deps lab-up lab-down bench-load bench-sip bench-capacity bench-overload bench-media bench-ha bench-raft bench-tls bench-dashboard fuzz vet fmt clean

all: build

build:
	$(GO) build -o $(BIN)/sbcd ./cmd/sbcd
	$(GO) build -o $(BIN)/sbcctl ./cmd/sbcctl

# sbcd, sbcctl and the systemd unit (configs/sbcd.service, Type=notify)
# with the paths rewritten to PREFIX and ETC; a config is put in ETC only
# when there is none. Then: systemctl daemon-reload && systemctl enable
# --now sbcd. DESTDIR stages a package.
PREFIX      ?= /usr/local
ETC         ?= /etc/edgesbc
SYSTEMD_DIR ?= /etc/systemd/system
install: build
	install -D -m 0755 $(BIN)/sbcd $(DESTDIR)$(PREFIX)/bin/sbcd
	install -D -m 0755 $(BIN)/sbcctl $(DESTDIR)$(PREFIX)/bin/sbcctl
	install -d -m 0755 $(DESTDIR)$(SYSTEMD_DIR) $(DESTDIR)$(ETC)
	sed -e 's#/usr/local/bin/#$(PREFIX)/bin/#g' -e 's#/etc/edgesbc/#$(ETC)/#g' configs/sbcd.service > $(DESTDIR)$(SYSTEMD_DIR)/sbcd.service
	test -e $(DESTDIR)$(ETC)/sbcd.yaml || install -m 0640 configs/default.yaml $(DESTDIR)$(ETC)/sbcd.yaml

# sbcd on its embedded default config: loopback only, no file needed.
run: build
	$(BIN)/sbcd

deps:
	bash scripts/deps.sh
	$(GO) mod download

# Every test: unit and loopback tests, then the netns lab end-to-end tests
# (these need root; without it they skip and say so, and under CI=true they
# fail), then a short fuzz. staticcheck (a go tool in go.mod) runs with
# vet; the unit packages run with the race detector (measured on 2 cores:
# sbc ~50 s either way, mediarelay 7 -> 12 s, bpf 11 -> 14 s), ha's unit
# tests too (-short: 13 s). The lab packages and ha in full (its
# multi-process raft tests: 75 s, 154 s under -race) run one package at a
# time (-p 1), without -race, so they never share the cores with each
# other and their timings stay those of the machine.
# go test's JSON stream is kept in $(TESTJSON); testsummary prints what
# plain go test would, then every FAIL and SKIP line and the package results.
# Fuzz budgets are counts, not durations: a duration races Go 1.26's fuzz
# coordinator under load and fails with "context deadline exceeded" and no
# crasher (golang/go#75804, fixed in Go 1.27).
TESTJSON  ?= .ci/out/test.json
LAB_PKGS  := ./test ./test/ha # then ha's multi-process TestPrivileged* (the rest ran under -race)
UNIT_PKGS  = $(shell $(GO) list $(PKGS) | grep -v -e '/test$$' -e '/test/ha$$' -e '/edgesbc/ha$$')
test: deps build
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	bash -o pipefail -c '{ $(GO) test -json -race -count=1 -timeout 20m $(UNIT_PKGS); u=$$?; \
		$(GO) test -json -race -short -count=1 -timeout 10m ./ha; r=$$?; \
		$(GO) test -json -p 1 -count=1 -timeout 20m $(LAB_PKGS); l=$$?; \
		$(GO) test -json -count=1 -timeout 10m -run '^TestPrivileged' ./ha; h=$$?; exit $$((u|r|l|h)); } \
		| $(GO) run ./internal/ci/testsummary -o $(TESTJSON)'
	$(GO) test -count=1 -run '^$$' -fuzz FuzzCheck -fuzztime 200000x ./sbc/sipguard
	$(GO) test -count=1 -run '^$$' -fuzz FuzzRewriteSDP -fuzztime 80000x -fuzzminimizetime 2000x ./mediarelay
	$(GO) test -count=1 -run '^$$' -fuzz FuzzParseCrypto -fuzztime 60000x -fuzzminimizetime 2000x ./mediarelay
	$(GO) test -count=1 -run '^$$' -fuzz FuzzDecodeRecord -fuzztime 15000x -fuzzminimizetime 2000x ./sbc
	$(GO) test -count=1 -run '^$$' -fuzz FuzzCrossBody -fuzztime 15000x -fuzzminimizetime 2000x ./sbc
	$(GO) test -count=1 -run '^$$' -fuzz FuzzIdentityNeverRaw -fuzztime 50000x -fuzzminimizetime 2000x ./topology

# TestSessionTimerSilentCaller on the real session clock: RFC 4028's 90 s
# floor against SIPp, about 105 s. make test runs the same test in about
# 13 s with sbcd's session-timer clock 10x faster (the test hook
# EDGESBC_TEST_TIMESCALE, values on the wire unchanged).
test-long: deps build
	SBC_LONG=1 $(GO) test -count=1 -timeout 20m -run 'TestSessionTimerSilentCaller' -v ./test

# Without the lab (no root needed).
test-unit:
	$(GO) test -count=1 -short $(PKGS)

lab-up:
	bash scripts/lab.sh up

lab-down:
	bash scripts/lab.sh down

# SIPp uac -> sbcd -> SIPp uas across the lab at stepped rates (SDP, media
# anchored, BYE after 0.5 s), alternating step by step with Kamailio as a
# stateful record-routing proxy (test/kamailio/stateful.cfg) and the same
# SIPp pair with no SBC in between. Root; takes tens of minutes.
# BASELINE=<git rev> also runs sbcd as built at that revision on the same
# ladder (before/after in one run). PROFILE=<dir> saves sbcd's CPU, alloc
# and heap profiles at 200 calls/s there.
bench-sip: deps build
	bash scripts/bench-deps.sh
	$(if $(BASELINE),bash scripts/build-at.sh $(BASELINE) $(BIN)/sbcd-baseline)
	SBC_BENCH_SIP=1 $(if $(BASELINE),SBC_BENCH_SIP_BASELINE=$(abspath $(BIN))/sbcd-baseline) $(if $(PROFILE),SBC_BENCH_PROFILE=$(abspath $(PROFILE))) $(GO) test -count=1 -timeout 90m -run TestBenchSIP -v ./test

# 5,000 calls held through sbcd with media anchored: live heap, RSS, fds
# and goroutines per call over idle, then back to idle after they end.
# Root; about 2 minutes.
bench-capacity: deps build
	SBC_BENCH_CAPACITY=1 $(GO) test -count=1 -timeout 15m -run TestBenchCapacity -v ./test

# What the dashboard's polling costs sbcd: its CPU with 1,000 calls held
# up by SIPp on loopback, without a browser and with headless Chromium
# showing the page, in turn. No root; about 5 minutes.
bench-dashboard: deps build
	SBC_BENCH_DASHBOARD=1 $(GO) test -count=1 -timeout 20m -run TestBenchDashboard -v ./cmd/sbcd

# Overload (issue 16): sbcd's capacity, then goodput, 503 latency and
# memory at 1.5x, 2x and 3x of it offered, beside Kamailio with pike on the
# same ladder, in the lab. Root; about 10 minutes. SBC_BENCH_RATES,
# SBC_BENCH_CAP_STEP and SBC_BENCH_STEP tune it.
bench-overload: deps build
	bash scripts/bench-deps.sh
	SBC_BENCH_OVERLOAD=1 $(GO) test -count=1 -timeout 40m -run TestBenchOverload -v ./test

# RTP through sbcd's relay beside rtpengine (user space) and nftables
# forwarding, in the lab, interleaved (TestBenchMedia, shortened here to
# 500 and 1000 calls, 5 s windows); then (TestBenchMediaSRTP) SRTP<->RTP
# beside plain RTP through one sbcd; then one row per forwarding path: bare
# tc ceiling, XDP native and generic, tc, the relay, rtpengine, nftables
# (TestBenchMediaPaths). Root; about 10 minutes.
bench-media: deps build
	bash scripts/bench-deps.sh
	SBC_BENCH_MEDIA=1 SBC_BENCH_WINDOW=5s SBC_BENCH_CALLS=500,1000 $(GO) test -count=1 -timeout 30m -run 'TestBenchMedia(SRTP|Paths)?$$' -v ./test

# The lab's load tests at benchmark size: 1,500 SIPp calls at 100/s and
# 500 calls with RTP both ways (50,000 pps through the relay); make test
# runs them at functional size (tens of calls, seconds). Root.
bench-load: deps build
	SBC_BENCH_LOAD=1 $(GO) test -count=1 -timeout 20m -run 'TestLoadRunNoFailedCalls|TestManyConcurrentCallsWithRTP' -v ./test

# Call setup on loopback with the caller on UDP, on a TLS trunk connection,
# and on a new TLS connection per call, interleaved. About 20 s; no root.
bench-tls:
	SBC_BENCH_TLS=1 $(GO) test -count=1 -run TestBenchTLSSetup -v ./sbc

# HA pair in the HA lab: several kill -9 failovers with calls and RTP
# (media gap, calls preserved, first new call), then CPS with HA on vs off.
# Root; about 3 minutes. SBC_BENCH_HA_KILLS, _CALLS, _STEP, _WORKERS, _HOLD tune it.
bench-ha: deps build
	SBC_BENCH_HA=1 $(GO) test -count=1 -timeout 20m -run TestBenchHA -v ./test/ha

# Raft alone (ha/, real processes in private netns, no lab lock): ten
# kill -9 failovers (election, VIP, ARP times) and puts batched beside
# unbatched. Root; about a minute.
bench-raft: deps
	HA_KILL_ROUNDS=10 HA_BENCH=1 $(GO) test -count=1 -timeout 10m -run 'TestPrivilegedRaftProcesses|TestPrivilegedPutThroughput' -v ./ha | grep -v '^=== '

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzCheck -fuzztime 60s ./sbc/sipguard
	$(GO) test -run '^$$' -fuzz FuzzRewriteSDP -fuzztime 60s -fuzzminimizetime 3s ./mediarelay
	$(GO) test -run '^$$' -fuzz FuzzParseRTCP -fuzztime 60s ./mediarelay
	$(GO) test -run '^$$' -fuzz FuzzParseCrypto -fuzztime 60s ./mediarelay
	$(GO) test -run '^$$' -fuzz FuzzDecodeRecord -fuzztime 60s -fuzzminimizetime 3s ./sbc

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)

# Regenerate bpf/'s objects and bindings from the C in bpf/c (needs clang,
# llvm and libbpf-dev from apt). Build and tests use the committed objects
# and need no clang.
.PHONY: generate
generate:
	@command -v clang >/dev/null || { echo "generate: needs clang: apt-get install clang llvm libbpf-dev" >&2; exit 1; }
	$(GO) generate ./bpf
