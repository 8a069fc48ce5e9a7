package chart

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The operator binary, built once for the package's tests.
var (
	buildOnce   sync.Once
	buildDir    string
	buildResult error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func operatorBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildResult = os.MkdirTemp("", "workspace-operator-chart-test")
		if buildResult != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, "manager"), ".")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildResult = fmt.Errorf("go build the operator: %w\n%s", err, out)
		}
	})
	if buildResult != nil {
		t.Fatal(buildResult)
	}
	return filepath.Join(buildDir, "manager")
}

// operatorFlag is a flag of the operator, as its --help describes it.
type operatorFlag struct {
	name string
	typ  string // "" for a bool, else string, int, float, duration, value, ...
	def  string // default, "" when --help shows none
}

var (
	flagLine    = regexp.MustCompile(`^  -(\S+)(?: (\S+))?$`)
	defaultText = regexp.MustCompile(`\(default (.*)\)$`)
)

// operatorFlags parses the operator's --help: it is the operator's own flag set, so a flag
// added to main.go shows up here without touching the tests.
func operatorFlags(t *testing.T) map[string]operatorFlag {
	t.Helper()
	cmd := exec.Command(operatorBinary(t), "--help")
	out, _ := cmd.CombinedOutput() // --help exits 0 or 2 depending on the flag package
	flags := map[string]operatorFlag{}
	var current *operatorFlag
	scanner := bufio.NewScanner(strings.NewReader(string(out)))
	for scanner.Scan() {
		line := scanner.Text()
		if m := flagLine.FindStringSubmatch(line); m != nil {
			flags[m[1]] = operatorFlag{name: m[1], typ: m[2]}
			f := flags[m[1]]
			current = &f
			continue
		}
		if current == nil {
			continue
		}
		if m := defaultText.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			def := m[1]
			if unquoted, err := strconv.Unquote(def); err == nil {
				def = unquoted
			}
			current.def = def
			flags[current.name] = *current
		}
	}
	if len(flags) < 10 {
		t.Fatalf("could not parse the operator's --help:\n%s", out)
	}
	return flags
}

// notExposed are the operator's flags the chart deliberately does not set, and why.
var notExposed = map[string]string{
	"kubeconfig": "in a cluster the operator uses its service account",
}

// implicitDefaults are the defaults --help does not print: flags implemented as a
// flag.Value, whose zero value means "the library's default".
var implicitDefaults = map[string]string{
	"zap-log-level":        "info",  // zap production mode
	"zap-encoder":          "json",  // zap production mode
	"zap-stacktrace-level": "error", // zap production mode
	"zap-time-encoding":    "epoch", // per --help: "Defaults to 'epoch'"
}

// effectiveFlags resolves a container's args against the operator's flag defaults, to the
// value each flag takes, normalised by type (5m and 5m0s, true and an argument-less bool).
func effectiveFlags(t *testing.T, flags map[string]operatorFlag, args []string) (map[string]string, []string) {
	t.Helper()
	values := map[string]string{}
	var problems []string
	for name, f := range flags {
		if f.def != "" {
			values[name] = normalise(f, f.def)
		} else if d, ok := implicitDefaults[name]; ok {
			values[name] = d
		} else if f.typ == "" {
			values[name] = "false"
		} else {
			values[name] = ""
		}
	}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "-") {
			problems = append(problems, fmt.Sprintf("argument %q is not a flag", arg))
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		f, ok := flags[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("--%s is not a flag of the operator", name))
			continue
		}
		if !hasValue {
			if f.typ == "" {
				value = "true"
			} else if i+1 < len(args) {
				i++
				value = args[i]
			}
		}
		values[name] = normalise(f, value)
	}
	return values, problems
}

func normalise(f operatorFlag, value string) string {
	switch f.typ {
	case "":
		if b, err := strconv.ParseBool(value); err == nil {
			return strconv.FormatBool(b)
		}
	case "int":
		if n, err := strconv.ParseInt(value, 10, 64); err == nil {
			return strconv.FormatInt(n, 10)
		}
	case "float":
		if n, err := strconv.ParseFloat(value, 64); err == nil {
			return strconv.FormatFloat(n, 'g', -1, 64)
		}
	case "duration":
		if d, err := time.ParseDuration(value); err == nil {
			return d.String()
		}
	}
	return value
}

// TestChartExposesEveryFlag fails when the operator gains a flag the chart cannot set.
func TestChartExposesEveryFlag(t *testing.T) {
	skipShort(t)
	flags := operatorFlags(t)
	set := map[string]bool{}
	for _, values := range [][]string{nil, {"--set", "leaderElection.namespace=kube-system", "--set", "aws.kmsKeyPolicy.Version=2012-10-17", "--set", "pprof.bindAddress=127.0.0.1:6060"}} {
		for _, arg := range args(t, find(mustRender(t, values...), "Deployment", releaseName)) {
			name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
			set[name] = true
		}
	}
	for name := range flags {
		if _, skip := notExposed[name]; skip || set[name] {
			continue
		}
		t.Errorf("operator flag --%s is not set by the chart: add a value for it to values.yaml, values.schema.json, "+
			"the args in templates/_helpers.tpl and README.md's table (or list it in notExposed in test/chart/flags_test.go with the reason)", name)
	}
	for name := range set {
		if _, ok := flags[name]; !ok {
			t.Errorf("the chart sets --%s, which the operator does not have", name)
		}
	}
}

// TestRenderedArgsAccepted runs the operator with the chart's arguments: it must get past
// parsing and validating its flags, failing only where it loads a kubeconfig.
func TestRenderedArgsAccepted(t *testing.T) {
	skipShort(t)
	binary := operatorBinary(t)
	for name, values := range map[string][]string{
		"default values": nil,
		"every setting changed": {
			"--set", "namespacePrefix=tenant-", "--set", "ingressNamespaces={ingress-nginx,traefik}",
			"--set", "dnsNamespace=dns", "--set", "dnsPodLabels.app=coredns",
			"--set", "defaultIssuer.kind=Issuer", "--set", "defaultIssuer.name=internal-ca",
			"--set", "ownerClusterRole=tenant-admin", "--set", "maxConcurrentReconciles=24",
			"--set", "kubeApiQps=50.5", "--set", "kubeApiBurst=1000000", "--set", "stalledRetryInterval=1h30m",
			"--set", "logLevel=debug", "--set", "logFormat=console", "--set", "logStacktraceLevel=panic",
			"--set", "logTimeEncoding=rfc3339", "--set", "logDevelopment=true",
			"--set", "leaderElection.namespace=kube-system", "--set", "metrics.secure=false",
			"--set", "metrics.port=9090", "--set", "probes.port=9091", "--set", "pprof.bindAddress=127.0.0.1:6060",
			"--set", "clusterName=prod-eu-1", "--set", "aws.region=eu-west-1", "--set", "aws.replicaRegion=eu-central-1",
			"--set", "aws.replicationRoleArn=arn:aws:iam::123456789012:role/replication",
			"--set", "aws.endpoints.s3=https://vpce.example.com", "--set", "aws.s3PathStyle=true", "--set", "aws.driftCheckInterval=30m",
			"--set", "aws.bucketPrefix=acme", "--set", "aws.kmsAliasPrefix=acme/ws",
			"--set", "aws.kmsKeyPolicy.Version=2012-10-17",
			"--set", "aws.workloadRoleArnTemplate=arn:aws:iam::123456789012:role/ws-{{ .Workspace }}",
			"--set", "storage.provisioner=ebs.csi.aws.com", "--set", "storage.parameters.iops=4000",
			"--set", "storage.kmsKeyParameter=kmsKeyId",
		},
		"metrics off, single replica": {"--set", "metrics.enabled=false", "--set", "replicas=1", "--set", "leaderElection.enabled=false"},
	} {
		t.Run(name, func(t *testing.T) {
			operatorArgs := args(t, find(mustRender(t, values...), "Deployment", releaseName))
			missing := filepath.Join(t.TempDir(), "no-kubeconfig")
			cmd := exec.Command(binary, append(operatorArgs, "--kubeconfig="+missing)...)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "load kubeconfig") {
				t.Errorf("the operator rejected the chart's arguments %v before loading its kubeconfig:\n%s", operatorArgs, out)
			}
		})
	}
}
