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
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

# Control-plane binaries for envtest, the e2e suite and make dev.
ASSETS = $(shell hack/controlplane.sh)

GO_TEST_FLAGS ?=

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs and the operator's ClusterRole from the markers.
	$(CONTROLLER_GEN) rbac:roleName=workspace-operator crd paths="./..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the DeepCopy methods.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when generated files are not committed.
	@if [ -n "$$(git status --porcelain -- api config)" ]; then \
		echo "generated files are stale; run 'make manifests generate' and commit:"; \
		git status --porcelain -- api config; git diff -- api config | head -50; exit 1; fi

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

##@ Test

.PHONY: test
test: verify-generated vet ## Run every test: unit and envtest suites, then the end-to-end suite.
	KUBEBUILDER_ASSETS="$(ASSETS)" go test $(GO_TEST_FLAGS) ./...

.PHONY: test-unit
test-unit: ## Run the tests that need no control plane.
	go test $(GO_TEST_FLAGS) -short ./...

.PHONY: test-e2e
test-e2e: ## Run only the end-to-end suite.
	KUBEBUILDER_ASSETS="$(ASSETS)" go test $(GO_TEST_FLAGS) ./test/e2e/... -v -ginkgo.v

##@ Run

.PHONY: build
build: ## Build the operator binary into bin/manager.
	go build -o $(LOCALBIN)/manager .

.PHONY: run
run: ## Run the operator against the cluster of the current kubeconfig.
	go run . --metrics-secure=false --metrics-bind-address=:8080

.PHONY: dev
dev: build ## Run the operator end to end on an embedded local control plane (Ctrl-C stops it all).
	KUBEBUILDER_ASSETS="$(ASSETS)" go run ./hack/dev --operator=$(LOCALBIN)/manager

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(LOCALBIN)/controller-gen $@

$(GOLANGCI_LINT):
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $@
