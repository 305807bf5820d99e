# gatewayq — run `make help` for the targets.
.DEFAULT_GOAL := help
GO ?= go

.PHONY: help demo test vet lint fmt build fuzz sandbox worker compose-check clean

help: ## Show the targets and what they do
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

demo: ## Run the demo: embedded Redis, IR sandbox, workers, a batch of returns
	$(GO) run ./cmd/demo

test: ## Run go vet and all tests with -race against a real Redis (starts one if needed)
	./scripts/test.sh

vet: ## go vet every package
	$(GO) vet ./...

fmt: ## gofmt every Go file in place
	gofmt -w $$(git ls-files '*.go')

lint: ## Fail when a Go file is not gofmt-formatted or go vet complains
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

build: ## Build every binary into ./bin
	$(GO) build -o bin/ ./cmd/...

fuzz: ## Fuzz each parser of outside input for FUZZTIME (default 30s) each
	@for t in $$(grep -rl '^func Fuzz' --include='*_test.go' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$t/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "fuzz $$t $$f"; $(GO) test $$t -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-30s} || exit 1; \
	  done; done

sandbox: ## Run the IR gateway sandbox on 127.0.0.1:4046 (mTLS) and :4443, PKI in ./.run/sandbox
	$(GO) run ./cmd/sandbox

worker: ## Run a worker with ./gatewayq.yaml (GATEWAYQ_* variables override it)
	$(GO) run ./cmd/worker --config gatewayq.yaml

compose-check: ## Validate docker-compose.yml (needs the docker client, not an engine)
	docker compose config -q

clean: ## Remove build output
	rm -rf bin .run
