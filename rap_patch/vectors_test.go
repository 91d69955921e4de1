/*
Copyright 2026 The RAP toolkit authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package userspace

// The conformance harness: replays every tests/vectors/*.json on rap.go, as
// rap/vectors.py replays them on the Python reference. Run with
//
//	RAP_VECTORS_DIR=/path/to/tests/vectors go test -run TestRAPVectors ./pkg/proxy/userspace
//
// (invoke test-proxy sets it). Each vector is a subtest; a mismatch names the
// vector, the request index (counting requests only, from 0, as the Python
// runner does), the step index, and the expected and actual answers.
//
// A vector's published objects (rap.aggregator's ConfigMaps and Lease) reach
// the balancer through the aggregated monitor's own code (rap_aggregated.go:
// onLoad, onLease, rapAggSnapshot), as the Python runner reads them through
// rap/pyproxy/aggmonitor.py.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kubernetes/pkg/proxy"
)

type vecEndpoint struct {
	IP       string `json:"ip"`
	Port     int32  `json:"port"`
	Node     string `json:"node"`      // "": no node name (a selectorless Service's Endpoints)
	PortName string `json:"port_name"` // "": vecDefaultPort
}

type vecUsage struct {
	CPU float64 `json:"cpu"`
	Mem float64 `json:"mem"`
	At  float64 `json:"at"`
}

type vecRTT struct {
	MS float64 `json:"ms"`
	At float64 `json:"at"`
}

type vecMetrics struct {
	Pods  map[string]vecUsage `json:"pods"`
	Nodes map[string]vecUsage `json:"nodes"`
	RTT   map[string]vecRTT   `json:"rtt_ms"`
	// Watched: the monitor's bounded view (nil: every node).
	Watched []string `json:"watched"`
}

// vecPublished: rap.aggregator's objects, each ConfigMap's data by name, and
// the Lease (nil: none) with its metrics timestamp (nil: no annotation).
type vecPublished struct {
	ConfigMaps map[string]map[string]string `json:"configmaps"`
	Lease      *struct {
		MetricsTimestamp *string `json:"metrics_timestamp"`
	} `json:"lease"`
	RTT map[string]vecRTT `json:"rtt_ms"`
	// ViewNodes: the proxy's RAP_VIEW_NODES (0: every node's record is read).
	ViewNodes int `json:"view_nodes"`
}

type vecRequest struct {
	Client        string  `json:"client"`
	At            float64 `json:"at"`
	AffinityReset bool    `json:"affinity_reset"`
	SrcPort       *int    `json:"src_port"`
	PortName      string  `json:"port_name"`
}

type vecDone struct {
	Endpoint string `json:"endpoint"`
	PortName string `json:"port_name"`
}

type vecStep struct {
	Request      *vecRequest    `json:"request"`
	Expect       *string        `json:"expect"`
	ExpectError  *string        `json:"expect_error"`
	SetEndpoints *[]vecEndpoint `json:"set_endpoints"`
	AddEndpoints *[]vecEndpoint `json:"add_endpoints"`
	SetMetrics   *vecMetrics    `json:"set_metrics"`
	SetPublished *vecPublished  `json:"set_published"`
	Done         *vecDone       `json:"done"`
}

type vector struct {
	Name      string                 `json:"name"`
	LocalNode string                 `json:"local_node"`
	Config    map[string]interface{} `json:"config"`
	Service   struct {
		Affinity         string `json:"affinity"`
		AffinityTimeoutS int    `json:"affinity_timeout_s"`
	} `json:"service"`
	Endpoints    []vecEndpoint `json:"endpoints"`
	Metrics      *vecMetrics   `json:"metrics"`
	Published    *vecPublished `json:"published"`
	WallClockAt0 string        `json:"wall_clock_at_0"`
	Steps        []vecStep     `json:"steps"`
}

// vecDefaultPort: the Service port of an endpoint, request or done that names none.
const vecDefaultPort = "http"

var vecService = types.NamespacedName{Namespace: "default", Name: "vector"}

func vecPort(name string) proxy.ServicePortName {
	if name == "" {
		name = vecDefaultPort
	}
	return proxy.ServicePortName{NamespacedName: vecService, Port: name}
}

// vecConfig mirrors RapConfig.from_mapping: defaults, stale_after = 3 x period
// unless given, then validation (rap_config.go's buildRAPConfig, as for the
// environment). A choice takes a JSON string, any other setting a number.
func vecConfig(m map[string]interface{}) (rapConfig, error) {
	known := map[string]bool{}
	for _, s := range new(rapConfig).settings() {
		known[s.field] = true
	}
	for k, v := range m {
		if v != nil && !known[k] {
			return defaultRAPConfig(), fmt.Errorf("config.%s: unknown RAP setting", k)
		}
	}
	return buildRAPConfig(func(s rapSetting) (bool, error) {
		v := m[s.field]
		if v == nil {
			return false, nil
		}
		if s.isChoice() {
			str, ok := v.(string)
			if !ok {
				return false, fmt.Errorf("config.%s: %v is not a string", s.field, v)
			}
			*s.str = str
			return true, nil
		}
		num, ok := v.(float64)
		if !ok {
			return false, fmt.Errorf("config.%s: %v is not a number", s.field, v)
		}
		*s.dst = num
		return true, nil
	})
}

func vecEndpointsObject(eps []vecEndpoint) *v1.Endpoints {
	obj := &v1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: vecService.Namespace, Name: vecService.Name}}
	// One subset per endpoint keeps the vector's order, per port, through
	// BuildPortsToEndpoints (addresses within a subset would be grouped by port).
	for _, ep := range eps {
		addr := v1.EndpointAddress{IP: ep.IP}
		if ep.Node != "" {
			node := ep.Node
			addr.NodeName = &node
		}
		obj.Subsets = append(obj.Subsets, v1.EndpointSubset{
			Addresses: []v1.EndpointAddress{addr},
			Ports:     []v1.EndpointPort{{Name: vecPort(ep.PortName).Port, Port: ep.Port, Protocol: v1.ProtocolTCP}},
		})
	}
	return obj
}

// vecPortNames: every Service port the vector mentions, so that each gets the
// Service's affinity up front, as the proxier's NewService gives it.
func vecPortNames(v *vector) []string {
	seen := map[string]bool{}
	var out []string
	add := func(name string) {
		if p := vecPort(name).Port; !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	addAll := func(eps []vecEndpoint) {
		for _, ep := range eps {
			add(ep.PortName)
		}
	}
	add("")
	addAll(v.Endpoints)
	for _, st := range v.Steps {
		switch {
		case st.SetEndpoints != nil:
			addAll(*st.SetEndpoints)
		case st.AddEndpoints != nil:
			addAll(*st.AddEndpoints)
		case st.Request != nil:
			add(st.Request.PortName)
		case st.Done != nil:
			add(st.Done.PortName)
		}
	}
	return out
}

func vecSnapshot(m vecMetrics) *rapSnapshot {
	s := &rapSnapshot{pods: map[string]rapUsage{}, nodes: map[string]rapUsage{}, rtt: map[string]rapRTT{}}
	for ip, u := range m.Pods {
		s.pods[ip] = rapUsage{cpu: u.CPU, mem: u.Mem, at: u.At}
	}
	for n, u := range m.Nodes {
		s.nodes[n] = rapUsage{cpu: u.CPU, mem: u.Mem, at: u.At}
	}
	s.rtt = vecRTTs(m.RTT)
	if m.Watched != nil {
		s.watched = map[string]bool{}
		for _, n := range m.Watched {
			s.watched[n] = true
		}
	}
	return s
}

func vecRTTs(m map[string]vecRTT) map[string]rapRTT {
	out := map[string]rapRTT{}
	for n, r := range m {
		out[n] = rapRTT{ms: r.MS, at: r.At}
	}
	return out
}

// vecReplay is one vector being replayed.
type vecReplay struct {
	v       *vector
	now     float64
	rb      *rapBalancer
	lb      *LoadBalancerRR
	current *v1.Endpoints
	// The aggregated monitor the published objects are handed to (nil until
	// the first), and the ConfigMaps it holds.
	agg     *rapAggMonitor
	aggMaps map[string]bool
	wall0   time.Time // the wall clock when r.now is 0
}

// publish hands p to the aggregated monitor as its informers would (each
// ConfigMap of p added or updated, each earlier one not in p deleted, the
// Lease updated or deleted) at the previous request's time, and swaps in
// what the monitor makes of them, with p's RTTs (which a proxy probes
// itself; nothing publishes them).
func (r *vecReplay) publish(p *vecPublished) {
	if r.agg == nil {
		r.agg = newRAPAggMonitor(r.rb, nil, 0, 1, 0)
		r.agg.serviceNodes = r.lb.serviceNodes
		r.agg.wall = func() time.Time { return r.wall0.Add(time.Duration(r.now * float64(time.Second))) }
		r.aggMaps = map[string]bool{}
	}
	configMap := func(name string, data map[string]string) *v1.ConfigMap {
		return &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: rapAggNamespace, Name: name,
			Labels: map[string]string{"rap.io/load": "true"}}, Data: data}
	}
	for name := range r.aggMaps {
		if _, ok := p.ConfigMaps[name]; !ok {
			r.agg.onLoad(configMap(name, nil), true)
			delete(r.aggMaps, name)
		}
	}
	for name, data := range p.ConfigMaps {
		r.agg.onLoad(configMap(name, data), false)
		r.aggMaps[name] = true
	}
	lease := &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: rapAggNamespace, Name: rapAggLeaseName,
		Annotations: map[string]string{}}}
	if p.Lease == nil {
		r.agg.onLease(lease, true)
	} else {
		if p.Lease.MetricsTimestamp != nil {
			lease.Annotations[rapAggMetricsTime] = *p.Lease.MetricsTimestamp
		}
		r.agg.onLease(lease, false)
	}
	// The view the monitor's informer would watch, drawn from the endpoints
	// the vector has set by now; the records outside it are handed over
	// anyway, as a stale informer might, and must be left out.
	r.agg.viewNodes = p.ViewNodes
	r.agg.watched = r.agg.wantWatched()
	s, _ := r.agg.published(r.now)
	s.rtt = vecRTTs(p.RTT)
	r.rb.setSnapshot(s)
}

func newVecReplay(v *vector) (*vecReplay, error) {
	cfg, err := vecConfig(v.Config)
	if err != nil {
		return nil, err
	}
	r := &vecReplay{v: v}
	r.rb = newRAPBalancer(cfg, v.LocalNode)
	r.rb.clock = func() float64 { return r.now }
	r.lb = newLoadBalancer(r.rb)

	affinity := v1.ServiceAffinityNone
	switch v.Service.Affinity {
	case "ClientIP":
		affinity = v1.ServiceAffinityClientIP
	case "None":
	default:
		return nil, fmt.Errorf("service.affinity: %q is not None or ClientIP", v.Service.Affinity)
	}
	for _, port := range vecPortNames(v) {
		if err := r.lb.NewService(vecPort(port), affinity, v.Service.AffinityTimeoutS); err != nil {
			return nil, err
		}
	}
	r.current = vecEndpointsObject(v.Endpoints)
	r.lb.OnEndpointsAdd(r.current)
	if v.WallClockAt0 != "" {
		if r.wall0, err = time.Parse(time.RFC3339Nano, v.WallClockAt0); err != nil {
			return nil, fmt.Errorf("wall_clock_at_0: %v", err)
		}
	}
	switch {
	case (v.Metrics == nil) == (v.Published == nil):
		return nil, fmt.Errorf("a vector gives exactly one of metrics and published")
	case v.Metrics != nil:
		r.rb.setSnapshot(vecSnapshot(*v.Metrics))
	default:
		r.publish(v.Published)
	}
	return r, nil
}

// request answers one request step as "ip:port" or "error <kind>".
func (r *vecReplay) request(i int, req *vecRequest) (string, error) {
	r.now = req.At
	ip := net.ParseIP(req.Client)
	if ip == nil {
		return "", fmt.Errorf("steps[%d].request.client: %q is not an IP", i, req.Client)
	}
	port := 40000 + i
	if req.SrcPort != nil {
		port = *req.SrcPort
	}
	got, err := r.lb.NextEndpoint(vecPort(req.PortName), &net.TCPAddr{IP: ip, Port: port}, req.AffinityReset)
	switch {
	case errors.Is(err, ErrMissingEndpoints):
		return "error no-endpoints", nil
	case err != nil:
		return "error " + err.Error(), nil
	}
	return got, nil
}

// runVector replays one vector; it returns one line per mismatching request.
func runVector(v *vector) ([]string, int, error) {
	r, err := newVecReplay(v)
	if err != nil {
		return nil, 0, err
	}
	var mismatches []string
	requests := 0
	for i, step := range v.Steps {
		switch {
		case step.SetEndpoints != nil:
			next := vecEndpointsObject(*step.SetEndpoints)
			r.lb.OnEndpointsUpdate(r.current, next)
			r.current = next
		case step.AddEndpoints != nil:
			r.current = vecEndpointsObject(*step.AddEndpoints)
			r.lb.OnEndpointsAdd(r.current)
		case step.SetMetrics != nil:
			r.rb.setSnapshot(vecSnapshot(*step.SetMetrics))
		case step.SetPublished != nil:
			r.publish(step.SetPublished)
		case step.Done != nil:
			r.lb.ConnectionDone(vecPort(step.Done.PortName), step.Done.Endpoint)
		case step.Request != nil:
			expected := ""
			switch {
			case step.Expect != nil:
				expected = *step.Expect
			case step.ExpectError != nil:
				expected = "error " + *step.ExpectError
			default:
				return nil, 0, fmt.Errorf("steps[%d]: a request without expect or expect_error", i)
			}
			actual, err := r.request(i, step.Request)
			if err != nil {
				return nil, 0, err
			}
			if actual != expected {
				mismatches = append(mismatches, fmt.Sprintf("%s: request %d (step %d): expected %s, got %s",
					v.Name, requests, i, expected, actual))
			}
			requests++
		default:
			return nil, 0, fmt.Errorf("steps[%d]: not a request, set_endpoints, add_endpoints, set_metrics, set_published or done", i)
		}
	}
	return mismatches, requests, nil
}

func TestRAPVectors(t *testing.T) {
	dir := os.Getenv("RAP_VECTORS_DIR")
	if dir == "" {
		t.Fatalf("RAP_VECTORS_DIR is not set: set it to the repo's tests/vectors directory (invoke test-proxy does)")
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatalf("RAP_VECTORS_DIR=%s: %v", dir, err)
	}
	if len(paths) == 0 {
		t.Fatalf("RAP_VECTORS_DIR=%s: no *.json vectors found", dir)
	}
	sort.Strings(paths)

	rapTestNoShuffle(t)

	total, failed := 0, 0
	for _, path := range paths {
		var v vector
		rapReadJSON(t, path, "a valid vector", &v)
		t.Run(v.Name, func(t *testing.T) {
			mismatches, n, err := runVector(&v)
			total += n
			if err != nil {
				failed++
				t.Fatalf("%s: %v", path, err)
			}
			for _, m := range mismatches {
				t.Error(m)
			}
			if len(mismatches) > 0 {
				failed++
			}
		})
	}
	t.Logf("RAP vectors: %d vectors, %d requests, %d vectors failed", len(paths), total, failed)
}

// TestRAPVectorFormat: the harness reads every field of the format
// (tests/vectors/README.md) as it says, on a vector worked out by hand.
func TestRAPVectorFormat(t *testing.T) {
	rapTestNoShuffle(t)
	const raw = `{
	  "name": "format", "local_node": "node-a",
	  "config": {"mode": "adaptive", "rtt_per_conn_ms": 10, "eject_s": 5, "hysteresis": 0.1, "period_s": null},
	  "service": {"affinity": "None"},
	  "endpoints": [
	    {"ip": "10.0.1.1", "port": 80, "node": "node-a"},
	    {"ip": "10.0.9.9", "port": 80, "node": ""},
	    {"ip": "10.0.1.1", "port": 9090, "node": "node-a", "port_name": "metrics"}
	  ],
	  "metrics": {"pods": {"10.0.1.1": {"cpu": 0, "mem": 0, "at": 0}},
	              "nodes": {"node-a": {"cpu": 0, "mem": 0, "at": 0}},
	              "rtt_ms": {"node-b": {"ms": 20, "at": 0}}},
	  "steps": [
	    {"request": {"client": "192.0.2.1", "at": 1}, "expect": "10.0.1.1:80"},
	    {"request": {"client": "192.0.2.1", "at": 1}, "expect": "10.0.1.1:80"},
	    {"request": {"client": "192.0.2.1", "at": 1}, "expect": "10.0.1.1:80"},
	    {"request": {"client": "192.0.2.1", "at": 1}, "expect": "10.0.9.9:80"},
	    {"done": {"endpoint": "10.0.1.1:80"}},
	    {"request": {"client": "192.0.2.1", "at": 1}, "expect": "10.0.1.1:80"},
	    {"request": {"client": "192.0.2.1", "at": 1, "port_name": "metrics"}, "expect": "10.0.1.1:9090"},
	    {"request": {"client": "192.0.2.1", "at": 2, "src_port": 40005, "affinity_reset": true}, "expect": "10.0.9.9:80"},
	    {"request": {"client": "192.0.2.1", "at": 7}, "expect": "10.0.9.9:80"},
	    {"request": {"client": "192.0.2.1", "at": 7.5}, "expect": "10.0.1.1:80"},
	    {"add_endpoints": [{"ip": "10.0.1.1", "port": 80, "node": "node-a"}, {"ip": "10.0.1.2", "port": 80, "node": "node-a"}]},
	    {"request": {"client": "192.0.2.1", "at": 8}, "expect": "10.0.1.2:80"},
	    {"request": {"client": "192.0.2.1", "at": 8, "port_name": "metrics"}, "expect": "10.0.1.1:9090"},
	    {"request": {"client": "192.0.2.1", "at": 8, "port_name": "grpc"}, "expect_error": "no-endpoints"},
	    {"set_endpoints": [{"ip": "10.0.1.1", "port": 80, "node": "node-a"}, {"ip": "10.0.1.1", "port": 9090, "node": "node-a", "port_name": "metrics"}]},
	    {"set_endpoints": [{"ip": "10.0.1.1", "port": 80, "node": "node-a"}]},
	    {"request": {"client": "192.0.2.1", "at": 8, "port_name": "metrics"}, "expect_error": "no-endpoints"},
	    {"done": {"endpoint": "10.0.1.1:9090", "port_name": "metrics"}}
	  ]
	}`
	// Step by step: http costs (active + 1) + rtt/10 with the selectorless
	// endpoint at rtt_max 20 (cost + 2): 1 < 3, 2 < 3, 3 = 3 (lower rtt), 4 > 3;
	// a done brings 10.0.1.1 to 2 (3 < 4). The reset with src_port 40005
	// retries step 5's connection: 10.0.1.1 ejected until 7 (inclusive), back
	// at 7.5 with 2 connections (3 < 3 + 1 + 2). add_endpoints replaces the
	// http list only; the new pod is unmeasured (headroom 1: 1 < 4). An update
	// resets a port only when the object it replaces had it (kube-proxy's
	// OnEndpointsUpdate), hence the metrics port back before it goes.
	v := replayInline(t, raw, 13)
	if v.Endpoints[1].Node != "" || vecEndpointsObject(v.Endpoints).Subsets[1].Addresses[0].NodeName != nil {
		t.Error(`node "" is not an address without a node name`)
	}
}

// TestRAPVectorPublishedFormat: published and set_published reach the
// balancer through the aggregated monitor, a ConfigMap left out of a
// set_published is deleted (the vector of tests/unit/test_vectors.py's
// test_set_published_deletes_the_configmaps_it_leaves_out).
func TestRAPVectorPublishedFormat(t *testing.T) {
	rapTestNoShuffle(t)
	const raw = `{
	  "name": "published-format", "local_node": "node-a", "service": {"affinity": "None"},
	  "endpoints": [{"ip": "10.0.1.1", "port": 80, "node": "node-a"}, {"ip": "10.0.2.1", "port": 80, "node": "node-b"}],
	  "wall_clock_at_0": "2027-01-15T08:00:00Z",
	  "published": {
	    "configmaps": {
	      "rap-load-node-b": {"node": "{\"name\":\"node-b\",\"ip\":\"10.1.0.2\"}", "pods": "{\"10.0.2.1\":{\"cpu\":0,\"mem\":0}}"},
	      "rap-load-node-a": {"node": "{\"name\":\"node-a\"}", "pods": "{\"10.0.1.1\":{\"cpu\":0.95,\"mem\":0.1}}"}
	    },
	    "lease": {"metrics_timestamp": "2027-01-15T08:00:00Z"},
	    "rtt_ms": {"node-b": {"ms": 10, "at": 0}}
	  },
	  "steps": [
	    {"request": {"client": "10.9.0.1", "at": 1}, "expect": "10.0.2.1:80"},
	    {"set_published": {
	      "configmaps": {"rap-load-node-b": {"node": "{\"name\":\"node-b\",\"ip\":\"10.1.0.2\"}", "pods": "{\"10.0.2.1\":{\"cpu\":0,\"mem\":0}}"}},
	      "lease": {"metrics_timestamp": "2027-01-15T08:00:00Z"},
	      "rtt_ms": {"node-b": {"ms": 10, "at": 0}}}},
	    {"request": {"client": "10.9.0.1", "at": 2}, "expect": "10.0.1.1:80"}
	  ]
	}`
	// a1 hot (0.95) -> b1; node-a's ConfigMap deleted: a1 unmeasured, cost 1 < b1's (1+1) + 1 -> a1.
	v := replayInline(t, raw, 2)
	r, err := newVecReplay(&v)
	if err != nil {
		t.Fatal(err)
	}
	if r.agg == nil || len(r.agg.loads) != 2 || r.rb.snapshot().pods["10.0.1.1"].at != 0 {
		t.Errorf("the published objects did not go through the aggregated monitor: %+v", r.agg)
	}
	v.Published = nil
	if _, err := newVecReplay(&v); err == nil {
		t.Error("a vector with neither metrics nor published was replayed")
	}
}

// replayInline replays a vector given as JSON text in a test, which must
// answer every request as it expects and replay want requests.
func replayInline(t *testing.T, raw string, want int) vector {
	t.Helper()
	var v vector
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		t.Fatal(err)
	}
	mismatches, n, err := runVector(&v)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mismatches {
		t.Error(m)
	}
	if n != want {
		t.Errorf("%d requests replayed, want %d", n, want)
	}
	return v
}
