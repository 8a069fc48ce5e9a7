package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestHelmLint(t *testing.T) {
	skipShort(t)
	for name, extra := range map[string][]string{
		"default values":     nil,
		"every option on":    allOptional,
		"a single replica":   {"--set", "replicas=1", "--set", "leaderElection.enabled=false"},
		"metrics turned off": {"--set", "metrics.enabled=false"},
	} {
		t.Run(name, func(t *testing.T) {
			lintArgs := append([]string{"lint", "--strict", "--kube-version", kubeVersion, chartDir()}, extra...)
			out, err := run(t, nil, helmBin(t), lintArgs...)
			if err != nil {
				t.Fatalf("helm lint --strict: %v\n%s", err, out)
			}
		})
	}
}

// TestTemplate renders value combinations and checks what each is for.
func TestTemplate(t *testing.T) {
	skipShort(t)
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, objs []*unstructured.Unstructured)
	}{{
		name: "default values",
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			d := find(objs, "Deployment", releaseName)
			if d == nil {
				t.Fatal("no Deployment")
			}
			if !slices.Contains(args(t, d), "--leader-elect") {
				t.Errorf("2 replicas without --leader-elect: %v", args(t, d))
			}
			for _, kind := range []string{"PodDisruptionBudget", "NetworkPolicy", "Service", "ServiceAccount", "Role", "RoleBinding", "CustomResourceDefinition"} {
				if len(ofKind(objs, kind)) == 0 {
					t.Errorf("no %s rendered", kind)
				}
			}
			for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
				if len(ofKind(objs, kind)) != 0 {
					t.Errorf("%s rendered though off by default", kind)
				}
			}
			// The only ConfigMap by default is the policy the admission policies read.
			if cms := ofKind(objs, "ConfigMap"); len(cms) != 1 || cms[0].GetName() != "workspace-operator-policy" {
				t.Errorf("ConfigMaps rendered by default: %v, want only workspace-operator-policy", cms)
			}
			spec, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
			if spec["affinity"] == nil || spec["topologySpreadConstraints"] == nil {
				t.Error("2 replicas without the default anti-affinity and topology spread")
			}
		},
	}, {
		name: "every option on",
		args: allOptional,
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
				if len(ofKind(objs, kind)) != 1 {
					t.Errorf("want one %s", kind)
				}
			}
			if find(objs, "ConfigMap", releaseName+"-kms-key-policy") == nil {
				t.Error("aws.kmsKeyPolicy set but no key policy ConfigMap")
			}
			policy, _ := json.Marshal(find(objs, "NetworkPolicy", releaseName).Object)
			if !strings.Contains(string(policy), `{"port":443,"protocol":"TCP"}]}`) {
				t.Errorf("aws.region set but no HTTPS egress to AWS: %s", policy)
			}
			cm := find(objs, "ConfigMap", releaseName+"-dashboard")
			if cm == nil {
				t.Fatal("no dashboard ConfigMap")
			}
			dashboard, _, _ := unstructured.NestedString(cm.Object, "data", "workspace-operator.json")
			var parsed map[string]any
			if err := json.Unmarshal([]byte(dashboard), &parsed); err != nil {
				t.Errorf("the dashboard ConfigMap does not hold valid JSON: %v", err)
			}
			if find(objs, "ClusterRoleBinding", releaseName+"-metrics-reader") == nil {
				t.Error("metrics.readerSubjects set but no metrics-reader ClusterRoleBinding")
			}
			rule, _ := json.Marshal(find(objs, "PrometheusRule", releaseName).Object)
			for _, metric := range []string{
				`workspace_operator_workspace_conditions{condition=\"Ready\",status=\"False\"`,
				`workspace_operator_workspaces{phase=\"Failed\"`,
				"workspace_operator_reconcile_errors_total",
				"controller_runtime_reconcile_errors_total",
			} {
				if !strings.Contains(string(rule), metric) {
					t.Errorf("PrometheusRule does not alert on %s", metric)
				}
			}
		},
	}, {
		name: "the admission policy reads the operator's maximum retention",
		args: []string{"--set", "backup.maxRetentionDays=14", "--set", "purge.window=336h"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			d := find(objs, "Deployment", releaseName)
			if d == nil || !slices.Contains(args(t, d), "--backup-max-retention-days=14") {
				t.Errorf("the operator does not get --backup-max-retention-days=14")
			}
			cm := find(objs, "ConfigMap", "workspace-operator-policy")
			if days, _, _ := unstructured.NestedString(cm.Object, "data", "maxBackupRetentionDays"); days != "14" {
				t.Errorf("workspace-operator-policy maxBackupRetentionDays = %q, want 14 like the operator's flag", days)
			}
			for _, kind := range []string{"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"} {
				if find(objs, kind, "workspace-storage-class-default") == nil {
					t.Errorf("no %s workspace-storage-class-default", kind)
				}
			}
			if find(objs, "ValidatingAdmissionPolicy", "workspace-backup-retention") == nil {
				t.Error("no ValidatingAdmissionPolicy workspace-backup-retention")
			}
		},
	}, {
		name: "a single replica without leader election",
		args: []string{"--set", "replicas=1", "--set", "leaderElection.enabled=false"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			d := find(objs, "Deployment", releaseName)
			if slices.Contains(args(t, d), "--leader-elect") {
				t.Error("--leader-elect though disabled")
			}
			if strategy, _, _ := unstructured.NestedString(d.Object, "spec", "strategy", "type"); strategy != "Recreate" {
				t.Errorf("strategy %q, want Recreate: two operators without leader election must never overlap", strategy)
			}
			for _, kind := range []string{"PodDisruptionBudget", "Role", "RoleBinding"} {
				if len(ofKind(objs, kind)) != 0 {
					t.Errorf("%s rendered for a single replica without leader election", kind)
				}
			}
		},
	}, {
		name: "a single replica keeps leader election by default",
		args: []string{"--set", "replicas=1"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			if !slices.Contains(args(t, find(objs, "Deployment", releaseName)), "--leader-elect") {
				t.Error("no --leader-elect: rolling updates would run two operators at once")
			}
			if len(ofKind(objs, "PodDisruptionBudget")) != 0 {
				t.Error("PodDisruptionBudget with minAvailable 1 for a single replica blocks every drain")
			}
		},
	}, {
		name: "metrics off",
		args: []string{"--set", "metrics.enabled=false"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			if !slices.Contains(args(t, find(objs, "Deployment", releaseName)), "--metrics-bind-address=0") {
				t.Error("metrics off but the endpoint still binds")
			}
			if len(ofKind(objs, "Service")) != 0 || find(objs, "ClusterRole", releaseName+"-metrics-auth") != nil {
				t.Error("metrics Service or metrics-auth rendered with metrics off")
			}
		},
	}, {
		name: "operator settings",
		args: []string{
			"--set", "namespacePrefix=tenant-", "--set", "ingressNamespaces={ingress-nginx,traefik}",
			"--set", "dnsNamespace=dns", "--set", "dnsPodLabels.app=coredns",
			"--set", "defaultIssuer.kind=Issuer", "--set", "defaultIssuer.name=internal-ca",
			"--set", "ownerClusterRole=tenant-admin", "--set", "maxConcurrentReconciles=24",
			"--set", "kubeApiQps=50.5", "--set", "kubeApiBurst=1000000", "--set", "stalledRetryInterval=1h30m",
			"--set", "logLevel=debug", "--set", "leaderElection.namespace=kube-system",
			"--set", "image.digest=sha256:" + strings.Repeat("ab", 32),
		},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			d := find(objs, "Deployment", releaseName)
			got := args(t, d)
			for _, want := range []string{
				"--namespace-prefix=tenant-", "--ingress-namespaces=ingress-nginx,traefik", "--dns-namespace=dns",
				"--dns-pod-labels=app=coredns,k8s-app=kube-dns", "--default-issuer=Issuer/internal-ca",
				"--owner-cluster-role=tenant-admin", "--max-concurrent-reconciles=24", "--kube-api-qps=50.5",
				"--kube-api-burst=1000000", "--stalled-retry-interval=1h30m", "--zap-log-level=debug",
				"--leader-election-namespace=kube-system",
			} {
				if !slices.Contains(got, want) {
					t.Errorf("args lack %s: %v", want, got)
				}
			}
			if image := container(t, d)["image"]; !strings.Contains(image.(string), "@sha256:") {
				t.Errorf("image %v is not pinned by digest", image)
			}
			if find(objs, "ClusterRole", "tenant-admin") == nil {
				t.Error("no ClusterRole named after ownerClusterRole")
			}
			rules, _ := json.Marshal(find(objs, "ClusterRole", releaseName).Object["rules"])
			if !strings.Contains(string(rules), `"resourceNames":["tenant-admin"]`) {
				t.Errorf("the operator may not bind ownerClusterRole tenant-admin: %s", rules)
			}
			role := find(objs, "Role", releaseName+"-leader-election")
			if role == nil || role.GetNamespace() != "kube-system" {
				t.Error("the leader election Role is not in leaderElection.namespace")
			}
		},
	}, {
		name: "own service account and network policy peers",
		args: []string{
			"--set", "serviceAccount.create=false", "--set", "serviceAccount.name=existing",
			"--set", "networkPolicy.apiServer.cidrs={10.0.0.1/32}",
			"--set", "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
		},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			if len(ofKind(objs, "ServiceAccount")) != 0 {
				t.Error("ServiceAccount rendered with serviceAccount.create=false")
			}
			binding := find(objs, "ClusterRoleBinding", releaseName)
			subjects, _ := json.Marshal(binding.Object["subjects"])
			if !strings.Contains(string(subjects), `"name":"existing"`) {
				t.Errorf("ClusterRoleBinding does not bind serviceAccount.name: %s", subjects)
			}
			policy, _ := json.Marshal(ofKind(objs, "NetworkPolicy")[0].Object)
			for _, want := range []string{`"cidr":"10.0.0.1/32"`, `"name":"monitoring"`} {
				if !strings.Contains(string(policy), want) {
					t.Errorf("NetworkPolicy lacks %s: %s", want, policy)
				}
			}
		},
	}, {
		name: "AWS endpoints become the SDK's own variables, before extraEnv",
		args: []string{
			"--set", "aws.region=eu-west-1",
			"--set", "aws.endpoints.kms=https://vpce-0a.kms.eu-west-1.vpce.amazonaws.com",
			"--set", "aws.endpoints.s3=https://bucket.vpce-0b.s3.eu-west-1.vpce.amazonaws.com",
			"--set", "aws.s3PathStyle=true",
			"--set", "extraEnv[0].name=GOMAXPROCS", "--set-string", "extraEnv[0].value=2",
		},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			d := find(objs, "Deployment", releaseName)
			env, _ := json.Marshal(container(t, d)["env"])
			want := `[{"name":"AWS_ENDPOINT_URL_KMS","value":"https://vpce-0a.kms.eu-west-1.vpce.amazonaws.com"},` +
				`{"name":"AWS_ENDPOINT_URL_S3","value":"https://bucket.vpce-0b.s3.eu-west-1.vpce.amazonaws.com"},` +
				`{"name":"GOMAXPROCS","value":"2"}]`
			if string(env) != want {
				t.Errorf("env = %s\nwant %s (aws.endpoints.sts is empty, so no AWS_ENDPOINT_URL_STS)", env, want)
			}
			if !slices.Contains(args(t, d), "--aws-s3-path-style=true") {
				t.Errorf("args lack --aws-s3-path-style=true: %v", args(t, d))
			}
		},
	}, {
		name: "no AWS endpoint, no environment",
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			if env := container(t, find(objs, "Deployment", releaseName))["env"]; env != nil {
				t.Errorf("env %v rendered with no aws.endpoints and no extraEnv", env)
			}
		},
	}, {
		name: "network policy off",
		args: []string{"--set", "networkPolicy.enabled=false"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			if len(ofKind(objs, "NetworkPolicy")) != 0 {
				t.Error("NetworkPolicy rendered though disabled")
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustRender(t, tt.args...))
		})
	}
}

// TestBadValues checks bad values fail with a message that points at the value.
func TestBadValues(t *testing.T) {
	skipShort(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"replicas not a number", []string{"--set-string", "replicas=two"}, "at '/replicas': got string, want integer"},
		{"replicas zero", []string{"--set", "replicas=0"}, "at '/replicas'"},
		{"unknown key", []string{"--set", "replica=2"}, "additional properties 'replica' not allowed"},
		{"unknown nested key", []string{"--set", "metrics.tls=true"}, "at '/metrics': additional properties 'tls' not allowed"},
		{"bad logLevel", []string{"--set", "logLevel=verbose"}, "at '/logLevel': value must be one of 'debug', 'info', 'error'"},
		{"bad logFormat", []string{"--set", "logFormat=text"}, "at '/logFormat'"},
		{"bad issuer kind", []string{"--set", "defaultIssuer.kind=CertManager"}, "at '/defaultIssuer/kind'"},
		{"bad namespace prefix", []string{"--set", "namespacePrefix=WS_"}, "at '/namespacePrefix'"},
		{"bad ingress namespace", []string{"--set", "ingressNamespaces={Ingress.Nginx}"}, "at '/ingressNamespaces/0'"},
		{"bad duration", []string{"--set", "stalledRetryInterval=5 minutes"}, "at '/stalledRetryInterval'"},
		{"zero duration", []string{"--set", "stalledRetryInterval=0s"}, `stalledRetryInterval must be positive (got "0s")`},
		{"bad digest", []string{"--set", "image.digest=sha256:1234"}, "at '/image/digest'"},
		{"latest tag", []string{"--set", "image.tag=latest"}, `image.tag must not be "latest"`},
		{"root user", []string{"--set", "securityContext.runAsUser=0"}, "at '/securityContext/runAsUser'"},
		{"bad port", []string{"--set", "metrics.port=70000"}, "at '/metrics/port'"},
		{"pprof address without port", []string{"--set", "pprof.bindAddress=127.0.0.1"}, "at '/pprof/bindAddress'"},
		{"qps not positive", []string{"--set", "kubeApiQps=0"}, "at '/kubeApiQps'"},
		{"no dns labels", []string{"--set", "dnsPodLabels=null"}, "dnsPodLabels"},
		{"bad extra arg", []string{"--set", "extraArgs={verbose}"}, "at '/extraArgs/0'"},
		{"the removed endpoint value", []string{"--set", "aws.endpointUrl=https://vpce.example.com"}, "at '/aws': additional properties 'endpointUrl' not allowed"},
		{"endpoint of an unknown service", []string{"--set", "aws.endpoints.ec2=https://vpce.example.com"}, "at '/aws/endpoints': additional properties 'ec2' not allowed"},
		{"endpoint without a scheme", []string{"--set", "aws.endpoints.kms=vpce.example.com"}, "at '/aws/endpoints/kms'"},
		{"replicas without leader election", []string{"--set", "replicas=3", "--set", "leaderElection.enabled=false"},
			"leaderElection.enabled=false needs replicas: 1"},
		{"clashing ports", []string{"--set", "metrics.port=8081"}, "metrics.port and probes.port must differ"},
		{"ServiceMonitor without metrics", []string{"--set", "metrics.enabled=false", "--set", "serviceMonitor.enabled=true"},
			"serviceMonitor.enabled needs metrics.enabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := helmTemplate(t, tt.args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded, want it to fail with %q; rendered %d bytes", tt.args, tt.want, len(out))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("helm template %v failed with\n%v\nwant the message to contain %q", tt.args, err, tt.want)
			}
		})
	}
}

// TestChartInSync fails when the chart's CRDs or generated RBAC lag config/.
func TestChartInSync(t *testing.T) {
	skipShort(t)
	out, err := run(t, nil, filepath.Join(repoRoot(), "hack", "sync-chart.sh"), "--check")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestGeneratedHeaders checks every generated file says so.
func TestGeneratedHeaders(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(chartDir(), "crds", "*.yaml"))
	files = append(files, filepath.Join(chartDir(), "templates", "_generated_rbac.tpl"))
	if _, err := os.Stat(filepath.Join(chartDir(), "templates", "generated-admission.yaml")); err == nil {
		files = append(files, filepath.Join(chartDir(), "templates", "generated-admission.yaml"))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		head := strings.Join(strings.SplitN(string(data), "\n", 4)[:3], "\n")
		if !strings.Contains(head, "generated by hack/sync-chart.sh") || !strings.Contains(head, "DO NOT EDIT") {
			t.Errorf("%s does not start with the generated-by-hack/sync-chart.sh, do-not-edit header", f)
		}
	}
}
