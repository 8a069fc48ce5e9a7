# workspace-operator
#
#   make dev    run the operator end to end on an embedded local control plane
#   make test   run every test: unit, envtest and end to end
#
# Everything a target needs is built from source through the Go module proxy: see
# hack/controlplane.sh for the Kubernetes control plane and the tool versions below.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION ?= v3.22.0
KUBE_SCORE_VERSION ?= v1.20.0
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
KUBE_SCORE ?= $(LOCALBIN)/kube-score-$(KUBE_SCORE_VERSION)
# The Kubernetes version helm renders and lints for: the control plane's (hack/controlplane.sh).
CHART_KUBE_VERSION ?= 1.37.1

# Control-plane binaries for envtest, the e2e suite and make dev.
ASSETS = $(shell hack/controlplane.sh)
# The local stack's node: containerd, kubelet and the rest (hack/node.sh), plus runc, the CNI
# plugins and iptables from the distribution. WORKSPACE_OPERATOR_NODE=off runs the stack
# without a node, on machines that cannot run one; the specs that need pods then skip.
NODE_ASSETS = $(if $(filter off,$(WORKSPACE_OPERATOR_NODE)),,$(shell hack/node-packages.sh && hack/node.sh))
# Third-party servers the cross-check suite runs the AWS clients against (test/crosscheck):
# LOCAL_KMS=<path> MINIO=<path>, built once and cached by version; a server that cannot be
# built is left out and its tests skip, saying why.
CROSSCHECK = $(shell hack/crosscheck.sh)

GO_TEST_FLAGS ?=

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs and the operator's ClusterRole from the markers, and copy them into the chart.
	$(CONTROLLER_GEN) rbac:roleName=workspace-operator crd paths="./..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	hack/sync-chart.sh
	go run ./hack/apidocs config/crd/bases docs/api.md

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the DeepCopy methods.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when generated files are not committed.
	@if [ -n "$$(git status --porcelain -- api config charts docs/api.md)" ]; then \
		echo "generated files are stale; run 'make manifests generate' and commit:"; \
		git status --porcelain -- api config charts docs/api.md; git diff -- api config charts docs/api.md | head -50; exit 1; fi

.PHONY: fmt
fmt: ## Format the code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: controlplane
controlplane: ## Build (once, cached by version) etcd, kube-apiserver, kube-controller-manager and kubectl.
	@hack/controlplane.sh

.PHONY: node
node: ## Build (once, cached by version) the local node: containerd, kubelet, kube-proxy, kube-router, CoreDNS, CSI sidecars.
	@hack/node-packages.sh && hack/node.sh

##@ Test

.PHONY: test
test: verify-generated vet $(HELM) $(KUBE_SCORE) ## Run every test: unit, envtest, chart and end-to-end suites.
	$(CROSSCHECK) KUBEBUILDER_ASSETS="$(ASSETS)" WORKSPACE_OPERATOR_NODE_ASSETS="$(NODE_ASSETS)" HELM="$(HELM)" KUBE_SCORE="$(KUBE_SCORE)" go test $(GO_TEST_FLAGS) ./...

.PHONY: test-unit
test-unit: ## Run the tests that need no control plane.
	go test $(GO_TEST_FLAGS) -short ./...

.PHONY: test-crosscheck
test-crosscheck: ## Run the AWS clients against local-kms and MinIO (servers this project did not write).
	$(CROSSCHECK) go test $(GO_TEST_FLAGS) ./test/crosscheck/... -v

.PHONY: test-aws
test-aws: ## Opt-in: run the AWS clients against a real account (needs credentials with config/iam/test-aws.json, WORKSPACE_OPERATOR_AWS_REGION; never in CI).
	WORKSPACE_OPERATOR_AWS_TEST=1 go test $(GO_TEST_FLAGS) -count=1 -timeout 30m ./test/aws/... -v

.PHONY: test-e2e
test-e2e: $(HELM) ## Run only the end-to-end suite.
	KUBEBUILDER_ASSETS="$(ASSETS)" WORKSPACE_OPERATOR_NODE_ASSETS="$(NODE_ASSETS)" HELM="$(HELM)" go test $(GO_TEST_FLAGS) ./test/e2e/... -v -ginkgo.v

.PHONY: chart-test
chart-test: $(HELM) $(KUBE_SCORE) ## Run the Helm chart, RBAC allow-list and GitOps health tests.
	KUBEBUILDER_ASSETS="$(ASSETS)" HELM="$(HELM)" KUBE_SCORE="$(KUBE_SCORE)" go test $(GO_TEST_FLAGS) ./test/chart/... ./test/gitops/...

.PHONY: chart-lint
chart-lint: $(HELM) $(KUBE_SCORE) ## Check the chart is in sync with config/, lint it strictly and kube-score it.
	hack/sync-chart.sh --check
	$(HELM) lint --strict --kube-version $(CHART_KUBE_VERSION) charts/workspace-operator
	$(HELM) template workspace-operator charts/workspace-operator --namespace workspace-operator-system \
		--kube-version $(CHART_KUBE_VERSION) | \
		$(KUBE_SCORE) score --ignore-container-cpu-limit --ignore-test container-image-pull-policy -

##@ Benchmarks

# Workspaces make bench provisions: BENCH_WORKSPACES=100 for a quick run.
BENCH_WORKSPACES ?= 1000

.PHONY: bench
bench: ## Benchmark the operator against the floor of its work, N = BENCH_WORKSPACES (docs/performance.md); run it alone on the machine.
	KUBEBUILDER_ASSETS="$(ASSETS)" go run ./test/bench -workspaces $(BENCH_WORKSPACES) -out bin/bench-$(BENCH_WORKSPACES).json

.PHONY: bench-backup
bench-backup: ## Benchmark the backup agent against a plain tar upload and restic on a local MinIO, then the data mover's full path on the local node (docs/performance-backup.md).
	go run ./test/bench/backup -size 1GiB -runs 5 -out bin/bench-backup.json -pprof bin/bench-backup
	KUBEBUILDER_ASSETS="$(ASSETS)" WORKSPACE_OPERATOR_NODE_ASSETS="$(NODE_ASSETS)" go run ./test/bench/backup full-path -size 1GiB -runs 3 -out bin/bench-backup-full-path.json

##@ Run

.PHONY: build
build: ## Build the operator binary into bin/manager.
	go build -o $(LOCALBIN)/manager .

.PHONY: run
run: ## Run the operator against the cluster of the current kubeconfig.
	go run . --metrics-secure=false --metrics-bind-address=:8080

.PHONY: dev
dev: build ## Run the operator end to end on an embedded local control plane (Ctrl-C stops it all).
	go build -o $(LOCALBIN)/dev ./hack/dev
	KUBEBUILDER_ASSETS="$(ASSETS)" WORKSPACE_OPERATOR_NODE_ASSETS="$(NODE_ASSETS)" $(LOCALBIN)/dev --operator=$(LOCALBIN)/manager

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(LOCALBIN)/controller-gen $@

.PHONY: helm
helm: $(HELM) ## Install helm into bin/.

.PHONY: kube-score
kube-score: $(KUBE_SCORE) ## Install kube-score into bin/.

$(HELM):
	GOBIN=$(LOCALBIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/helm $@

$(KUBE_SCORE):
	GOBIN=$(LOCALBIN) go install github.com/zegl/kube-score/cmd/kube-score@$(KUBE_SCORE_VERSION)
	mv $(LOCALBIN)/kube-score $@

$(GOLANGCI_LINT):
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $@
