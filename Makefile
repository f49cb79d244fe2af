# tillpoint build and test entry points. `make check` is what CI runs.

GO            ?= go
STATICCHECK   ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_TIMEOUT  ?= 25m
DEB_PACKAGES  := pcscd libpcsclite-dev vsmartcard-vpcd socat pcsc-tools chromium zbar-tools pgbouncer

.PHONY: check fmt-check vet staticcheck test hil deps build bench bench-compare fuzz

## check: everything CI checks: formatting, vet, staticcheck, the race-enabled test suite (HIL included)
check: fmt-check vet staticcheck test

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change these files; run gofmt -w on them:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run $(STATICCHECK) ./...

test:
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

## hil: only the hardware-in-the-loop suite (real pcscd, ptys, printers, the real binary)
## (ends with a table: scenario, result, duration; GAP = a part of the product the scenario needs is not built yet)
hil:
	$(GO) test -race -timeout 10m -count=1 -json ./hil-tests/... | $(GO) run ./hil-tests/cmd/hilreport

build:
	$(GO) build -o bin/tillpoint ./cmd/tillpoint

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## bench-compare: a benchmark at OLD against the working tree, alternating runs, compared by benchstat
## e.g. make bench-compare OLD=main~2 PKG=./cloud/sqlstore BENCH='IngestSQLite/batch=1000$' ROUNDS=8
bench-compare:
	scripts/bench-compare "$(OLD)" "$(PKG)" "$(BENCH)" "$(or $(ROUNDS),6)" "$(or $(BENCHTIME),60x)"

## deps: installs the Debian packages the device and HIL tests need (as root), or says what to install
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "deps: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: missing$$missing; run 'sudo make deps' or 'sudo apt-get install$$missing'"; exit 1; fi
	@if [ -f hil-tests/package.json ] && command -v npm >/dev/null; then \
		cd hil-tests && npm install --no-audit --no-fund --silent; fi
	@# playwright-core for the cashier screen's browser test (agent/screen/e2e)
	@if ! command -v npm >/dev/null; then echo "deps: npm missing; install Node.js and npm for the cashier screen browser test"; \
	else cd agent/screen && npm ci --no-audit --no-fund --silent; fi
