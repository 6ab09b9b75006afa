# bylaw — common tasks. `make help` lists them.
CARGO ?= cargo
CONFORMANCE_DIR ?= $(abspath ../shared/conformance/kyverno-policies)
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
BENCH_SECONDS ?= 10
BENCH_CONNECTIONS ?= 32
BENCH_ROUNDS ?= 5
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= policy_compile pattern_eval jmespath substitution admission_review patch test_suite_yaml scalars cel

.PHONY: fuzz fuzz-seeds deny hostile-load help build fmt fmt-check lint test crds crds-check ci demo conformance conformance-update bench bench-webhook bench-apiserver bench-cli bench-scan e2e cli-docs observability-check chart-files helm-lint e2e-install

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

build: ## build every crate and the bylaw binary
	$(CARGO) build --workspace --all-targets

fmt: ## format the code
	$(CARGO) fmt --all

fmt-check: ## fail when the code is not formatted
	$(CARGO) fmt --all -- --check

lint: ## clippy on all targets, warnings are errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: ## run the whole test suite (unit, integration, CRD drift, conformance ratchet)
	$(CARGO) test --workspace

crds: ## regenerate crds/ and helm/bylaw/crds/ from the Rust types
	$(CARGO) run -q -p bylaw-cli -- crds --out-dir crds
	mkdir -p helm/bylaw/crds && cp crds/*.yaml helm/bylaw/crds/

ci: fmt-check lint test ## what CI runs: format check, clippy, tests (the tests include the CRD drift check)

e2e: ## tests that need a real cluster (KUBECONFIG)
	@test -n "$$KUBECONFIG" || { echo "make e2e: set KUBECONFIG to a kubeconfig of a real cluster (these tests create and delete objects in it)" >&2; exit 2; }
	$(CARGO) test --workspace -- --ignored

conformance: ## score bylaw against Kyverno's policy library (prints `N passed, N failed`)
	$(CARGO) run -q --release -p bylaw-cli -- conformance --corpus $(CONFORMANCE_DIR) --index $(abspath ../shared/conformance/kyverno-policies-index.json)

conformance-update: ## rewrite tests/conformance.passing with every suite that passes now
	$(CARGO) run -q --release -p bylaw-cli -- conformance --corpus $(CONFORMANCE_DIR) --index $(abspath ../shared/conformance/kyverno-policies-index.json) --update

demo: ## no cluster needed: run `bylaw serve` on examples/ with a dev certificate and send it sample AdmissionReviews over HTTPS
	$(CARGO) build -q -p bylaw-cli
	BYLAW=$(TARGET_DIR)/debug/bylaw sh examples/admission-reviews/demo.sh

bench: ## criterion benchmarks of the engine: the Pod Security sets against a Pod and a Deployment, the library's mutate policies against a Pod
	BYLAW_CONFORMANCE_CORPUS=$(CONFORMANCE_DIR) $(CARGO) bench -p bylaw-engine --bench evaluate

bench-webhook: ## load-test the admission webhook (release build, oha, the 18 Pod Security policies against none, BENCH_ROUNDS alternations, 127.0.0.1 only)
	$(CARGO) build -q --release -p bylaw-cli
	@command -v oha >/dev/null 2>&1 || $(CARGO) install oha --locked
	BYLAW=$(TARGET_DIR)/release/bylaw POLICY_DIR=$(CONFORMANCE_DIR)/pod-security ROUNDS=$(BENCH_ROUNDS) \
	  DURATION=$(BENCH_SECONDS) CONNECTIONS=$(BENCH_CONNECTIONS) sh examples/admission-reviews/bench/run.sh

bench-apiserver: ## bylaw's CPU per review behind a real kube-apiserver (KUBECONFIG; dry-run Pod creates, Pod Security set and none)
	$(CARGO) build -q --release -p bylaw-cli
	@command -v oha >/dev/null 2>&1 || $(CARGO) install oha --locked
	BYLAW=$(TARGET_DIR)/release/bylaw POLICY_DIR=$(CONFORMANCE_DIR)/pod-security sh tests/bench/apiserver.sh

bench-cli: ## time `bylaw apply` of the Pod Security policies on 100, 1,000 and 10,000 generated Pods
	$(CARGO) build -q --release -p bylaw-cli
	BYLAW=$(TARGET_DIR)/release/bylaw POLICY_DIR=policies/pod-security sh tests/bench/cli.sh

bench-scan: ## first background scan of 10,000 Pods in 100 namespaces (fake API server): CPU, peak RSS, report bytes and writes
	$(CARGO) build -q --release -p bylaw-cli
	$(CARGO) build -q --release -p bylaw-test-support --example scan_bench_apiserver
	BYLAW=$(TARGET_DIR)/release/bylaw FAKE=$(TARGET_DIR)/release/examples/scan_bench_apiserver \
	  POLICY_DIR=policies/pod-security PODS=$${PODS:-10000} NAMESPACES=$${NAMESPACES:-100} sh tests/bench/scan.sh

cli-docs: ## regenerate docs/cli.md from the command-line definitions
	$(CARGO) run -q -p bylaw-cli -- __cli-docs > docs/cli.md

observability-check: ## alert rules through promtool; every dashboard query against a real Prometheus scraping bylaw serve
	$(CARGO) build -q -p bylaw-cli
	promtool check rules helm/bylaw/files/prometheus-rules.yaml
	promtool test rules tests/observability/alerts-test.yaml
	BYLAW=$(TARGET_DIR)/debug/bylaw sh tests/observability/prometheus-check.sh

chart-files: ## copy policies/pod-security into the Helm chart (helm/bylaw/policies; never edit the copy)
	rm -rf helm/bylaw/policies && mkdir -p helm/bylaw/policies/pod-security
	for level in baseline restricted; do mkdir -p helm/bylaw/policies/pod-security/$$level && cp policies/pod-security/$$level/*.yaml helm/bylaw/policies/pod-security/$$level/; done

helm-lint: ## helm lint + helm template for several value sets; every rendered manifest checked against the Kubernetes schemas (HELM=path)
	CARGO=$(CARGO) TARGET_DIR=$(TARGET_DIR) sh tests/helm/lint.sh

e2e-install: ## docs/install.md's local-binary path on a real cluster (KUBECONFIG, HELM): chart, denied Pod, dashboard data, cleanup
	$(CARGO) build -q -p bylaw-cli
	BYLAW=$(TARGET_DIR)/debug/bylaw sh tests/e2e/install-local.sh

fuzz-seeds: ## build fuzz/corpus from Kyverno's policy library and the repository's examples (never committed)
	CONFORMANCE_DIR=$(CONFORMANCE_DIR) sh fuzz/seed.sh

fuzz: fuzz-seeds ## run every fuzz target for FUZZ_SECONDS each (cargo-fuzz, nightly features via RUSTC_BOOTSTRAP; crashes land in fuzz/artifacts)
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for target in $(FUZZ_TARGETS); do \
	  echo "== $$target ($(FUZZ_SECONDS) s)"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none $$target corpus/$$target -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=1 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 || exit 1; \
	done

deny: ## cargo deny: advisories, licenses, bans (duplicates warn), sources — needs the advisory database (network), so not part of `make ci`
	@command -v cargo-deny >/dev/null 2>&1 || $(CARGO) install cargo-deny --locked
	$(CARGO) deny check

hostile-load: ## bylaw serve (release) under hostile clients on 127.0.0.1: idle/slow connections, oversized headers, 1,000 concurrent 3 MiB bodies, HTTP/2 rapid reset, TLS handshake floods, an exploding policy; then a 60 s soak (oha)
	$(CARGO) build -q --release -p bylaw-cli
	$(CARGO) build -q --release -p bylaw-test-support --example hostile_client
	@command -v oha >/dev/null 2>&1 || $(CARGO) install oha --locked
	BYLAW=$(TARGET_DIR)/release/bylaw HOSTILE_CLIENT=$(TARGET_DIR)/release/examples/hostile_client sh tests/hostile/run.sh
