package main

import (
	"net/http"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// requestKey classifies an API request the way apiserver_request_total labels it, so
// that the bench's own requests can be subtracted from the API server's counts.
type requestKey struct {
	Verb        string // POST, PUT, PATCH, APPLY, DELETE, DELETECOLLECTION, GET, LIST, WATCH
	Resource    string // plural resource; empty for non-resource paths such as /metrics
	Subresource string
}

func (k requestKey) String() string {
	s := k.Verb + " " + k.Resource
	if k.Subresource != "" {
		s += "/" + k.Subresource
	}
	return s
}

// isWrite reports whether the request changes state.
func (k requestKey) isWrite() bool {
	switch k.Verb {
	case "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION":
		return true
	}
	return false
}

// requestCounts is a count per request class.
type requestCounts map[requestKey]float64

func (c requestCounts) minus(o requestCounts) requestCounts {
	out := requestCounts{}
	for k, v := range c {
		if d := v - o[k]; d != 0 {
			out[k] = d
		}
	}
	for k, v := range o {
		if _, ok := c[k]; !ok && v != 0 {
			out[k] = -v
		}
	}
	return out
}

// total sums the counts that keep accepts.
func (c requestCounts) total(keep func(requestKey) bool) float64 {
	var sum float64
	for k, v := range c {
		if keep(k) {
			sum += v
		}
	}
	return sum
}

// byRequest lists resource requests by "VERB resource[/subresource]".
func (c requestCounts) byRequest() map[string]float64 {
	out := map[string]float64{}
	for k, v := range c {
		if k.Resource != "" && v != 0 {
			out[k.String()] += v
		}
	}
	return out
}

func resourceRequest(k requestKey) bool { return k.Resource != "" }
func resourceWrite(k requestKey) bool   { return k.Resource != "" && k.isWrite() }

// requestCounter counts the requests this process sends to the API server.
type requestCounter struct {
	mu     sync.Mutex
	counts requestCounts
	infos  *request.RequestInfoFactory
}

func newRequestCounter() *requestCounter {
	return &requestCounter{
		counts: requestCounts{},
		// The API server's own classifier, so that list, watch and get are told apart
		// exactly as apiserver_request_total tells them apart.
		infos: &request.RequestInfoFactory{
			APIPrefixes:          sets.NewString("api", "apis"),
			GrouplessAPIPrefixes: sets.NewString("api"),
		},
	}
}

// wrap is a rest.Config WrapTransport.
func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return &countingTransport{counter: c, next: rt}
}

type countingTransport struct {
	counter *requestCounter
	next    http.RoundTripper
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.counter.add(req)
	return t.next.RoundTrip(req)
}

// WrappedRoundTripper lets client-go reach the transport below, to cancel requests.
func (t *countingTransport) WrappedRoundTripper() http.RoundTripper { return t.next }

func (c *requestCounter) add(req *http.Request) {
	info, err := c.infos.NewRequestInfo(req)
	if err != nil {
		return
	}
	key := requestKey{Verb: reportedVerb(info, req)}
	if info.IsResourceRequest {
		key.Resource, key.Subresource = info.Resource, info.Subresource
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[key]++
}

func (c *requestCounter) snapshot() requestCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(requestCounts, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// reportedVerb is the verb label apiserver_request_total gives the request: the
// installer's action verb (POST for create, PUT for update), with server-side apply
// reported as APPLY.
func reportedVerb(info *request.RequestInfo, req *http.Request) string {
	switch info.Verb {
	case "create":
		return "POST"
	case "update":
		return "PUT"
	case "patch":
		if req.Header.Get("Content-Type") == string(types.ApplyPatchType) {
			return "APPLY"
		}
		return "PATCH"
	}
	return strings.ToUpper(info.Verb)
}

// sortedKeys returns m's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
