package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/workspace-operator/workspace-operator/test/awsemu"
)

// snapshot is every counter the bench reads, at one moment. Phases report the difference
// of two snapshots.
type snapshot struct {
	at        time.Time
	bench     requestCounts // the bench's own requests
	apiserver requestCounts // every request the API server served
	seconds   requestCounts // the API server's time serving them
	aws       awsemu.CallCounts
	cpu       map[string]time.Duration
	operator  families // nil without an operator
}

// snapshot reads every counter, retrying a failed scrape: an API server working off a
// backlog of large writes can take longer than a request's timeout to answer.
func (e *env) snapshot(ctx context.Context, op *runningOperator) (*snapshot, error) {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		var s *snapshot
		if s, err = e.trySnapshot(ctx, op); err == nil {
			return s, nil
		}
		logf("snapshot attempt %d: %v", attempt, err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
	return nil, err
}

func (e *env) trySnapshot(ctx context.Context, op *runningOperator) (*snapshot, error) {
	s := &snapshot{at: time.Now(), aws: e.aws.Calls(), cpu: e.cpuNow(op)}
	if op != nil {
		var err error
		if s.operator, err = scrapeHTTP(ctx, op.MetricsURL()); err != nil {
			return nil, err
		}
	}
	data, err := e.rest.Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("scrape kube-apiserver: %w", err)
	}
	apiserver, err := parseMetrics(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	s.apiserver = apiserver.apiserverRequests()
	s.seconds = apiserver.apiserverSeconds()
	// Read last, so that the scrape above counts as the bench's own.
	s.bench = e.requests.snapshot()
	return s, nil
}

func withPid(pids map[string]int, name string, pid int) map[string]int {
	out := make(map[string]int, len(pids)+1)
	for k, v := range pids {
		out[k] = v
	}
	out[name] = pid
	return out
}

// Requests are the API requests and AWS calls of one phase, in total.
type Requests struct {
	// Operator is the operator's own count, rest_client_requests_total, by HTTP method:
	// GET covers get, list and watch.
	Operator map[string]float64 `json:"operatorByMethod,omitempty"`
	// OperatorByCode is the same by "method code": 409s are conflicts and
	// AlreadyExists, GET 404s cache misses read live.
	OperatorByCode map[string]float64 `json:"operatorByCode,omitempty"`
	// Others is what the API server served to everyone but the bench: the operator,
	// kube-controller-manager and the API server's own loopback client, by request.
	Others map[string]float64 `json:"apiserverOthersByRequest"`
	// APIServerSeconds is the time kube-apiserver spent serving each class of request,
	// for every client, the bench included.
	APIServerSeconds map[string]float64 `json:"apiserverSecondsByRequest"`
	// Bench is what the bench itself sent, by request.
	Bench map[string]float64 `json:"benchByRequest"`
	// AWS is what the emulator served, by "service operation".
	AWS map[string]float64 `json:"awsByOperation"`
	// AWSOperatorMetric is the operator's own count, workspace_operator_aws_calls_total.
	AWSOperatorMetric float64 `json:"awsOperatorMetric"`
	// Reconciles by "controller result", controller_runtime_reconcile_total.
	Reconciles map[string]float64 `json:"reconciles,omitempty"`
	// CPU seconds each process used.
	CPU     cpuUsage `json:"cpuSeconds"`
	Seconds float64  `json:"seconds"`

	others requestCounts
	bench  requestCounts
}

// requestsBetween is what happened between two snapshots.
func requestsBetween(before, after *snapshot) Requests {
	bench := after.bench.minus(before.bench)
	others := after.apiserver.minus(before.apiserver).minus(bench)
	r := Requests{
		Others:           others.byRequest(),
		APIServerSeconds: after.seconds.minus(before.seconds).byRequest(),
		Bench:            bench.byRequest(),
		AWS:              map[string]float64{},
		CPU:              cpuDelta(after.cpu, before.cpu),
		Seconds:          after.at.Sub(before.at).Seconds(),
		others:           others,
		bench:            bench,
	}
	for call, n := range after.aws {
		if d := float64(n - before.aws[call]); d != 0 {
			r.AWS[call.Service+" "+call.Operation] += d
		}
	}
	if after.operator != nil && before.operator != nil {
		r.Operator = minus(after.operator.sumBy("rest_client_requests_total", "method"), before.operator.sumBy("rest_client_requests_total", "method"))
		r.OperatorByCode = minus(after.operator.sumBy("rest_client_requests_total", "method", "code"), before.operator.sumBy("rest_client_requests_total", "method", "code"))
		r.AWSOperatorMetric = after.operator.gauge("workspace_operator_aws_calls_total") - before.operator.gauge("workspace_operator_aws_calls_total")
		r.Reconciles = minus(after.operator.sumBy("controller_runtime_reconcile_total", "controller", "result"),
			before.operator.sumBy("controller_runtime_reconcile_total", "controller", "result"))
	}
	return r
}

func isWriteMethod(method string) bool {
	switch method {
	case "POST", "PUT", "PATCH", "DELETE":
		return true
	}
	return false
}

// operatorWrites and operatorReads are the operator's own counts.
func (r Requests) operatorWrites() float64 { return sum(r.Operator, isWriteMethod) }
func (r Requests) operatorReads() float64 {
	return sum(r.Operator, func(m string) bool { return !isWriteMethod(m) })
}
func (r Requests) awsCalls() float64 { return sum(r.AWS, nil) }
func (r Requests) reconciles(controller string) float64 {
	return sum(r.Reconciles, func(k string) bool { return strings.HasPrefix(k, controller+" ") })
}
