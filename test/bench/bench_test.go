package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentilesUseNearestRank(t *testing.T) {
	var samples []time.Duration
	for i := 1; i <= 100; i++ {
		samples = append(samples, time.Duration(i)*time.Second)
	}
	p := percentiles(samples)
	if p.P50 != 50 || p.P99 != 99 || p.Max != 100 || p.Count != 100 {
		t.Fatalf("percentiles = %+v, want p50 50, p99 99, max 100", p)
	}
	if got := percentiles(nil); got.Count != 0 {
		t.Fatalf("percentiles(nil) = %+v", got)
	}
}

func TestRequestCounterClassifiesAsTheAPIServer(t *testing.T) {
	c := newRequestCounter()
	for _, r := range []struct{ method, target, contentType string }{
		{"GET", "/api/v1/namespaces", ""},
		{"GET", "/api/v1/namespaces?watch=true", ""},
		{"GET", "/api/v1/namespaces/ws-a", ""},
		{"POST", "/apis/networking.k8s.io/v1/namespaces/ws-a/networkpolicies", "application/json"},
		{"PATCH", "/apis/tenancy.workspace-operator.io/v1alpha1/workspaces/a/status", "application/merge-patch+json"},
		{"PATCH", "/api/v1/namespaces/ws-a", "application/apply-patch+yaml"},
		{"GET", "/metrics", ""},
	} {
		req := httptest.NewRequest(r.method, r.target, nil)
		req.Header.Set("Content-Type", r.contentType)
		c.add(req)
	}
	want := requestCounts{
		{Verb: "LIST", Resource: "namespaces"}:                         1,
		{Verb: "WATCH", Resource: "namespaces"}:                        1,
		{Verb: "GET", Resource: "namespaces"}:                          1,
		{Verb: "POST", Resource: "networkpolicies"}:                    1,
		{Verb: "PATCH", Resource: "workspaces", Subresource: "status"}: 1,
		{Verb: "APPLY", Resource: "namespaces"}:                        1,
		{Verb: "GET"}:                                                  1,
	}
	got := c.snapshot()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%v: %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if writes := got.total(resourceWrite); writes != 3 {
		t.Errorf("writes = %v, want 3", writes)
	}
}

func TestZeroClassesAddsEveryOtherClass(t *testing.T) {
	obj := map[string]any{"spec": map[string]any{"hard": map[string]any{"pods": "20"}}}
	if err := zeroClasses(obj, []string{"gp3"}, "spec", "hard"); err != nil {
		t.Fatal(err)
	}
	hard := obj["spec"].(map[string]any)["hard"].(map[string]any)
	if len(hard) != 3 || hard["gp3.storageclass.storage.k8s.io/requests.storage"] != "0" {
		t.Fatalf("hard = %v", hard)
	}
}

func TestParseCallchains(t *testing.T) {
	script := "\n\t  ffffffff81000130 entry_SYSCALL_64 ([kernel.kallsyms])\n" +
		"\t  de6e internal/runtime/syscall/linux.Syscall6 (/bin/op)\n" +
		"\t  b5486 go.shape.struct { a int }.f (/bin/op)\n\n" +
		"\t  39405 [unknown] (/bin/apiserver)\n"
	samples := parseCallchains([]byte(script))
	if len(samples) != 2 || len(samples[0]) != 3 {
		t.Fatalf("samples = %v", samples)
	}
	if f := samples[0][0]; f.pkg() != "[kernel]" {
		t.Errorf("kernel frame package = %q", f.pkg())
	}
	if f := samples[0][2]; f.sym != "go.shape.struct { a int }.f" || f.dso != "/bin/op" {
		t.Errorf("frame = %+v", f)
	}
	if f := samples[0][1]; f.pkg() != "internal/runtime/syscall/linux" {
		t.Errorf("package = %q", f.pkg())
	}
	if f := samples[1][0]; f.ip != 0x39405 || f.sym != "[unknown]" {
		t.Errorf("unresolved frame = %+v", f)
	}
}

func TestOperatorProfilesAreFetchedAndSummarised(t *testing.T) {
	// The handlers controller-runtime serves on --pprof-bind-address.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	server := httptest.NewServer(mux)
	defer server.Close()
	dir := t.TempDir()

	var reports []string
	p := &cpuProfile{path: filepath.Join(dir, "op-create.cpu.pprof"), done: make(chan error, 1)}
	p.done <- fetchProfile(context.Background(), server.URL+"/debug/pprof/profile?seconds=1", p.path, time.Minute)
	p.wait(&reports)
	heap := filepath.Join(dir, "op-heap.pprof")
	if err := fetchProfile(context.Background(), server.URL+"/debug/pprof/heap", heap, time.Minute); err != nil {
		t.Fatal(err)
	}
	addProfile(heap, &reports)

	want := []string{p.path, filepath.Join(dir, "op-create.cpu.txt"), heap, filepath.Join(dir, "op-heap.txt")}
	if strings.Join(reports, " ") != strings.Join(want, " ") {
		t.Fatalf("reports = %v, want %v", reports, want)
	}
	for summary, sampleType := range map[string]string{want[1]: "Type: cpu", want[3]: "Type: inuse_space"} {
		data, err := os.ReadFile(summary)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), sampleType) {
			t.Errorf("%s lacks %q:\n%s", summary, sampleType, data)
		}
	}

	missing := filepath.Join(dir, "missing.pprof")
	if err := fetchProfile(context.Background(), server.URL+"/debug/pprof/nonexistent", missing, time.Minute); err == nil {
		t.Error("fetching an unknown profile succeeded")
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a failed fetch left %s behind", missing)
	}
}
