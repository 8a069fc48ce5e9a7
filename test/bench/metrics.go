package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// families are the metric families of one scrape, by name.
type families map[string]*dto.MetricFamily

func parseMetrics(r io.Reader) (families, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	f, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return f, nil
}

// scrapeHTTP reads a plain HTTP Prometheus endpoint, such as the operator's.
func scrapeHTTP(ctx context.Context, url string) (families, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// Plain text: the parser reads the text exposition format only.
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// value is a sample's value, whatever the metric type.
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sumBy sums the samples of a metric grouped by the values of the given labels, joined
// by spaces.
func (f families) sumBy(name string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	family, ok := f[name]
	if !ok {
		return out
	}
	for _, m := range family.Metric {
		values := make([]string, len(labels))
		for i, l := range labels {
			values[i] = label(m, l)
		}
		out[strings.Join(values, " ")] += value(m)
	}
	return out
}

// gauge is the sum of a metric's samples: its value when it has one.
func (f families) gauge(name string) float64 {
	return f.sumBy(name)[""]
}

// apiserverRequests reads apiserver_request_total by verb, resource and subresource,
// summed over groups, versions, scopes and codes.
func (f families) apiserverRequests() requestCounts {
	out := requestCounts{}
	for key, v := range f.sumBy("apiserver_request_total", "verb", "resource", "subresource") {
		parts := strings.SplitN(key, " ", 3)
		out[requestKey{Verb: parts[0], Resource: parts[1], Subresource: parts[2]}] += v
	}
	return out
}

// apiserverSeconds reads the time kube-apiserver spent serving each class of request,
// the sum of apiserver_request_duration_seconds; watches, which stay open, are left out.
func (f families) apiserverSeconds() requestCounts {
	out := requestCounts{}
	family, ok := f["apiserver_request_duration_seconds"]
	if !ok {
		return out
	}
	for _, m := range family.Metric {
		key := requestKey{Verb: label(m, "verb"), Resource: label(m, "resource"), Subresource: label(m, "subresource")}
		if key.Verb != "WATCH" && m.Histogram != nil {
			out[key] += m.Histogram.GetSampleSum()
		}
	}
	return out
}

// minus subtracts two series key by key.
func minus(after, before map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func sum(m map[string]float64, keep func(string) bool) float64 {
	var s float64
	for k, v := range m {
		if keep == nil || keep(k) {
			s += v
		}
	}
	return s
}
