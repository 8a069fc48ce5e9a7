package localstack

import (
	"fmt"
	"strings"
)

// PodIdentityPolicy stands in for EKS Pod Identity (or IRSA's webhook), which gives a pod
// its ServiceAccount's AWS credentials: a MutatingAdmissionPolicy, with its binding, that
// sets env (NAME=value pairs) on every container of every pod created in namespace. The
// operator sets no credentials on the pods it creates, as on EKS, so the data mover's pods
// reach the AWS emulator only through this.
func PodIdentityPolicy(namespace string, env []string) string {
	var vars strings.Builder
	for i, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if i > 0 {
			vars.WriteString(", ")
		}
		fmt.Fprintf(&vars, "Object.spec.containers.env{name: %q, value: %q}", name, value)
	}
	return `apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata:
  name: localstack-pod-identity
spec:
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: [v1]
        operations: [CREATE]
        resources: [pods]
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: ` + namespace + `
  failurePolicy: Fail
  reinvocationPolicy: Never
  mutations:
    - patchType: ApplyConfiguration
      applyConfiguration:
        expression: >-
          Object{spec: Object.spec{containers: object.spec.containers.map(c,
          Object.spec.containers{name: c.name, env: [` + vars.String() + `]})}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata:
  name: localstack-pod-identity
spec:
  policyName: localstack-pod-identity
`
}
