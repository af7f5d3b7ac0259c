# Convenience targets; each is one documented command.
.PHONY: run demo test test-ci bench fuzz build docker

run:            ## the quickstart: embedded store, demo account, mock upstream
	go run ./cmd/creditgate quickstart

demo:           ## drive a running quickstart until the 429, then print the ledger
	go run ./cmd/creditgate demo

bench:          ## the load harness: mock, bare reverse proxy and creditgate side by side → BENCHMARKS.md
	go run ./bench -out BENCHMARKS.md

test:           ## the whole suite (real Redis when reachable)
	go test -race ./...

test-ci:        ## as CI does it
	.ci/run

FUZZTIME ?= 30s
fuzz:           ## every fuzz target for FUZZTIME each
	go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./money
	go test -run '^$$' -fuzz '^FuzzLoadBytes$$' -fuzztime $(FUZZTIME) ./config
	go test -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME) ./metering
	go test -run '^$$' -fuzz '^FuzzStreamFilter$$' -fuzztime $(FUZZTIME) ./metering
	go test -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME) ./metering/internal/jsonscan
	go test -run '^$$' -fuzz '^FuzzCountMatchesTiktoken$$' -fuzztime $(FUZZTIME) ./metering/bpe
	go test -run '^$$' -fuzz '^FuzzDashboardRequest$$' -fuzztime $(FUZZTIME) ./admin

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/creditgate ./cmd/creditgate

docker:
	docker build -t creditgate .
