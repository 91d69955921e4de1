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

// Tests of rap_monitor.go against a real HTTP server on loopback standing in
// for the API server and metrics.k8s.io, and a real listener for the RTT
// probe: parsing, failure and recovery of the metrics source, the per-item
// merge and the stamping of samples with the metrics' own timestamps, and
// stopping.

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

func TestRAPMonitorWanted(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"RAP_KUBECONFIG": "/etc/k"}, true},
		// Merely running in a pod (a CI inside Kubernetes running upstream's tests) is not enough.
		{map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, false},
		{map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "RAP_MODE": "adaptive"}, false},
		// The DaemonSet (rap/deploy/spec.py rap_env) always sets RAP_NODE_NAME.
		{map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "RAP_NODE_NAME": "node-a"}, true},
		{map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "RAP_NODE_NAME": "node-a", "RAP_ENABLE_MONITOR": "false"}, false},
		{map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "RAP_ENABLE_MONITOR": "true"}, true},
		{map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "RAP_ENABLE_MONITOR": " TRUE "}, true},
		{map[string]string{"RAP_NODE_NAME": "  "}, false},
		// The local cluster (rap/localcluster/cluster.py proxy_env) sets both.
		{map[string]string{"RAP_KUBECONFIG": "/etc/k", "RAP_NODE_NAME": "node-a"}, true},
		{map[string]string{"RAP_KUBECONFIG": "/etc/k", "RAP_ENABLE_MONITOR": "false"}, true},
	} {
		env := tc.env
		if got := monitorWanted(func(k string) string { return env[k] }); got != tc.want {
			t.Errorf("%v: monitorWanted = %v, want %v", env, got, tc.want)
		}
	}
}

type rapFakeAPI struct {
	metricsDown int32 // 1: metrics.k8s.io answers 503
	nodesDown   int32 // 1: the node list answers 503
	nodes       v1.NodeList
	pods        v1.PodList

	mu          sync.Mutex // the metrics change between refreshes
	podMetrics  string
	nodeMetrics string
}

func (f *rapFakeAPI) setMetrics(pods, nodes string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.podMetrics, f.nodeMetrics = pods, nodes
}

func rapUnavailable(w http.ResponseWriter) {
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the server is currently unable to handle the request","reason":"ServiceUnavailable","code":503}`))
}

func (f *rapFakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/api/v1/nodes":
		if atomic.LoadInt32(&f.nodesDown) == 1 {
			rapUnavailable(w)
			return
		}
		json.NewEncoder(w).Encode(&f.nodes)
	case "/api/v1/pods":
		json.NewEncoder(w).Encode(&f.pods)
	case "/apis/metrics.k8s.io/v1beta1/pods", "/apis/metrics.k8s.io/v1beta1/nodes":
		if atomic.LoadInt32(&f.metricsDown) == 1 {
			rapUnavailable(w)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/pods") {
			w.Write([]byte(f.podMetrics))
		} else {
			w.Write([]byte(f.nodeMetrics))
		}
	default:
		http.NotFound(w, r)
	}
}

func rapTestNode(name, ip, cpu, mem string) v1.Node {
	n := v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if ip != "" {
		n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeHostName, Address: name}, {Type: v1.NodeInternalIP, Address: ip}}
	}
	n.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse(mem)}
	return n
}

func rapTestPod(name, ip string, hostNet bool, containers ...v1.ResourceRequirements) v1.Pod {
	p := v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
	p.Spec.HostNetwork = hostNet
	for i, rr := range containers {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: "c" + strconv.Itoa(i), Resources: rr})
	}
	p.Status.Phase = v1.PodRunning
	p.Status.PodIP = ip
	p.Status.PodIPs = []v1.PodIP{{IP: ip}}
	return p
}

func rl(cpu, mem string) v1.ResourceList {
	out := v1.ResourceList{}
	if cpu != "" {
		out[v1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		out[v1.ResourceMemory] = resource.MustParse(mem)
	}
	return out
}

const rapTestPodMetrics = `{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":[
 {"metadata":{"name":"limited","namespace":"default"},"timestamp":"2026-01-01T00:00:00Z","window":"30s",
  "containers":[{"name":"c0","usage":{"cpu":"300m","memory":"64Mi"}},{"name":"c1","usage":{"cpu":"100m","memory":"64Mi"}}]},
 {"metadata":{"name":"requested","namespace":"default"},"timestamp":"2026-01-01T00:00:00Z","window":"30s",
  "containers":[{"name":"c0","usage":{"cpu":"900m","memory":"10Mi"}}]},
 {"metadata":{"name":"cpuonly","namespace":"default"},"timestamp":"2026-01-01T00:00:00Z","window":"30s",
  "containers":[{"name":"c0","usage":{"cpu":"50m","memory":"900Mi"}}]},
 {"metadata":{"name":"unbounded","namespace":"default"},"timestamp":"2026-01-01T00:00:00Z","window":"30s",
  "containers":[{"name":"c0","usage":{"cpu":"5","memory":"1Gi"}}]},
 {"metadata":{"name":"hostnet","namespace":"default"},"timestamp":"2026-01-01T00:00:00Z","window":"30s",
  "containers":[{"name":"c0","usage":{"cpu":"1","memory":"1Gi"}}]},
 {"metadata":{"name":"gone","namespace":"default"},"timestamp":"2026-01-01T00:00:00Z","window":"30s",
  "containers":[{"name":"c0","usage":{"cpu":"1","memory":"1Gi"}}]}
]}`

const rapTestNodeMetrics = `{"kind":"NodeMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":[
 {"metadata":{"name":"node-a"},"timestamp":"2026-01-01T00:00:00Z","window":"30s","usage":{"cpu":"1500m","memory":"1Gi"}},
 {"metadata":{"name":"node-b"},"timestamp":"2026-01-01T00:00:00Z","window":"30s","usage":{"cpu":"250m","memory":"3Gi"}},
 {"metadata":{"name":"node-x"},"timestamp":"2026-01-01T00:00:00Z","window":"30s","usage":{"cpu":"1","memory":"1Gi"}}
]}`

func rapTestMonitor(t *testing.T) (*rapFakeAPI, *rapMonitor, *rapBalancer, *float64) {
	t.Helper()
	// A real listener for the RTT probe of node-b.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	api := &rapFakeAPI{podMetrics: rapTestPodMetrics, nodeMetrics: rapTestNodeMetrics}
	api.nodes = v1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"}, Items: []v1.Node{
		rapTestNode("node-a", "127.0.0.1", "2", "4Gi"), // local: no probe
		rapTestNode("node-b", "127.0.0.1", "1", "4Gi"),
		rapTestNode("node-c", "", "4", "8Gi"), // no address, no metrics
	}}
	api.pods = v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: []v1.Pod{
		rapTestPod("limited", "10.0.1.1", false,
			v1.ResourceRequirements{Limits: rl("500m", "128Mi")}, v1.ResourceRequirements{Limits: rl("300m", "128Mi")}),
		rapTestPod("requested", "10.0.2.1", false, v1.ResourceRequirements{Requests: rl("1", "100Mi")}),
		rapTestPod("cpuonly", "10.0.2.2", false, v1.ResourceRequirements{Limits: rl("100m", "")}),
		rapTestPod("unbounded", "10.0.3.1", false, v1.ResourceRequirements{}),
		rapTestPod("hostnet", "192.168.0.2", true, v1.ResourceRequirements{Limits: rl("1", "1Gi")}),
	}}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)

	now := new(float64)
	*now = 100
	rb := newRAPBalancer(defaultRAPConfig(), "node-a")
	rb.clock = func() float64 { return *now }
	m, err := newRAPMonitor(rb, &rest.Config{Host: srv.URL}, port)
	if err != nil {
		t.Fatal(err)
	}
	// The metrics' timestamp is 100 on the balancer's clock, unless a test says otherwise.
	m.wall = func() time.Time { return rapTestWall(*now - 100) }
	return api, m, rb, now
}

// rapTestWall: the wall clock s seconds after the fake metrics' timestamp.
func rapTestWall(s float64) time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(s * float64(time.Second)))
}

// rapMetricsAt moves every timestamp of a fake metrics list to s seconds
// after the original one.
func rapMetricsAt(list string, s float64) string {
	return strings.ReplaceAll(list, "2026-01-01T00:00:00Z", rapTestWall(s).Format(time.RFC3339Nano))
}

// rapMetricsWithout drops the named items from a fake metrics list.
func rapMetricsWithout(t *testing.T, list string, names ...string) string {
	t.Helper()
	var doc map[string]interface{}
	if err := json.Unmarshal([]byte(list), &doc); err != nil {
		t.Fatal(err)
	}
	var kept []interface{}
	for _, item := range doc["items"].([]interface{}) {
		name := item.(map[string]interface{})["metadata"].(map[string]interface{})["name"].(string)
		drop := false
		for _, n := range names {
			drop = drop || n == name
		}
		if !drop {
			kept = append(kept, item)
		}
	}
	doc["items"] = kept
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func rapClose(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestRAPMonitorParsesMetrics(t *testing.T) {
	_, m, rb, _ := rapTestMonitor(t)
	m.refresh(context.Background())
	s := rb.snapshot()

	for ip, want := range map[string]rapUsage{
		"10.0.1.1": {cpu: 0.5, mem: 0.5, at: 100}, // 400m of 800m, 128Mi of 256Mi
		"10.0.2.1": {cpu: 0.9, mem: 0.1, at: 100}, // requests when no limit
		"10.0.2.2": {cpu: 0.5, mem: 0, at: 100},   // no memory bound: unknown counts 0
	} {
		got, ok := s.pods[ip]
		if !ok || !rapClose(got.cpu, want.cpu) || !rapClose(got.mem, want.mem) || got.at != want.at {
			t.Errorf("pod %s: got %+v (present %v), want %+v", ip, got, ok, want)
		}
	}
	for _, ip := range []string{"10.0.3.1", "192.168.0.2"} {
		if u, ok := s.pods[ip]; ok {
			t.Errorf("pod %s: got %+v, want no sample (no limits / host network)", ip, u)
		}
	}
	for name, want := range map[string]rapUsage{
		"node-a": {cpu: 0.75, mem: 0.25, at: 100},
		"node-b": {cpu: 0.25, mem: 0.75, at: 100},
	} {
		got, ok := s.nodes[name]
		if !ok || !rapClose(got.cpu, want.cpu) || !rapClose(got.mem, want.mem) || got.at != want.at {
			t.Errorf("node %s: got %+v (present %v), want %+v", name, got, ok, want)
		}
	}
	if len(s.nodes) != 2 {
		t.Errorf("nodes: %v, want node-a and node-b only", s.nodes)
	}
	if r, ok := s.rtt["node-b"]; !ok || r.ms <= 0 || r.ms > 1000 || r.at != 100 {
		t.Errorf("rtt node-b: %+v (present %v), want a measured loopback connect", r, ok)
	}
	if _, ok := s.rtt["node-a"]; ok {
		t.Error("rtt: the local node was probed")
	}
	if m.metricsOK == nil || !*m.metricsOK {
		t.Error("metrics state not recorded as available")
	}
}

func TestRAPMonitorMetricsFailureFallsBackToRoundRobin(t *testing.T) {
	api, m, rb, now := rapTestMonitor(t)
	rapTestNoShuffle(t)
	lb := newLoadBalancer(rb)
	lb.OnEndpointsAdd(rapTestEndpoints(
		rapTestEP{"10.0.1.1", "node-a"}, rapTestEP{"10.0.2.1", "node-b"}, rapTestEP{"10.0.1.2", "node-a"}))

	// Metrics down from the start: blind, round robin.
	atomic.StoreInt32(&api.metricsDown, 1)
	m.refresh(context.Background())
	if m.metricsOK == nil || *m.metricsOK {
		t.Fatal("metrics failure not recorded")
	}
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.2.1:80", "10.0.1.2:80")

	// Metrics back: local preference (node-a at 0.75 CPU is below 0.8).
	atomic.StoreInt32(&api.metricsDown, 0)
	m.refresh(context.Background())
	if !*m.metricsOK {
		t.Fatal("recovery not recorded")
	}
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.1.2:80", "10.0.1.1:80")

	// Down again: the old samples are kept until stale_after, then round robin.
	atomic.StoreInt32(&api.metricsDown, 1)
	*now = 110
	m.refresh(context.Background())
	rapTestExpect(t, lb, "10.0.1.2:80")
	*now = 115.5
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.2.1:80", "10.0.1.2:80")
}

func TestRAPMonitorRunStopsWithContext(t *testing.T) {
	_, m, rb, _ := rapTestMonitor(t)
	rb.cfg.periodS = 0.05
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for rounds := 0; rounds < 3 && time.Now().Before(deadline); {
		// Read published snapshots while the monitor merges: under -race,
		// a write to a map once published fails here.
		s := rb.snapshot()
		for range s.pods {
		}
		for range s.nodes {
		}
		for range s.rtt {
		}
		if len(s.nodes) > 0 {
			rounds++
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("monitor did not stop")
	}
	if len(rb.snapshot().nodes) == 0 {
		t.Fatal("monitor never published a snapshot")
	}
}

func rapTestUsage(t *testing.T, what string, got map[string]rapUsage, key string, cpu, at float64) {
	t.Helper()
	u, ok := got[key]
	if !ok || !rapClose(u.cpu, cpu) || u.at != at {
		t.Errorf("%s %s: got %+v (present %v), want cpu %v at %v", what, key, u, ok, cpu, at)
	}
}

func TestRAPMonitorItemMissingFromOneFetchKeepsItsSampleUntilStale(t *testing.T) {
	api, m, rb, now := rapTestMonitor(t)
	m.refresh(context.Background())

	// Five seconds on: metrics-server skipped pod "limited" and node-b.
	*now = 105
	api.setMetrics(rapMetricsAt(rapMetricsWithout(t, rapTestPodMetrics, "limited"), 5),
		rapMetricsAt(rapMetricsWithout(t, rapTestNodeMetrics, "node-b"), 5))
	m.refresh(context.Background())
	s := rb.snapshot()
	rapTestUsage(t, "pod", s.pods, "10.0.1.1", 0.5, 100) // kept, with its old at
	rapTestUsage(t, "pod", s.pods, "10.0.2.1", 0.9, 105)
	rapTestUsage(t, "node", s.nodes, "node-b", 0.25, 100)
	rapTestUsage(t, "node", s.nodes, "node-a", 0.75, 105)

	// Still missing once stale_after_s (15 s) has passed: dropped, and so is
	// the monitor's memory of its timestamp.
	*now = 115.5
	api.setMetrics(rapMetricsAt(rapMetricsWithout(t, rapTestPodMetrics, "limited"), 15.5),
		rapMetricsAt(rapMetricsWithout(t, rapTestNodeMetrics, "node-b"), 15.5))
	m.refresh(context.Background())
	s = rb.snapshot()
	if u, ok := s.pods["10.0.1.1"]; ok {
		t.Errorf("pod 10.0.1.1: %+v kept past stale_after_s", u)
	}
	if u, ok := s.nodes["node-b"]; ok {
		t.Errorf("node-b: %+v kept past stale_after_s", u)
	}
	if _, ok := m.podStamps["default/limited"]; ok {
		t.Error("the stamp of a pod gone stale is still remembered")
	}
	if _, ok := m.nodeStamps["node-b"]; ok {
		t.Error("the stamp of a node gone stale is still remembered")
	}
	rapTestUsage(t, "pod", s.pods, "10.0.2.1", 0.9, 115.5)
}

func TestRAPMonitorFailedFetchKeepsEverything(t *testing.T) {
	api, m, rb, now := rapTestMonitor(t)
	m.refresh(context.Background())
	before := rb.snapshot()

	*now = 110
	atomic.StoreInt32(&api.metricsDown, 1)
	atomic.StoreInt32(&api.nodesDown, 1)
	m.refresh(context.Background())
	after := rb.snapshot()
	if after == before {
		t.Fatal("no new snapshot published")
	}
	for what, pair := range map[string][2]map[string]rapUsage{"pods": {before.pods, after.pods}, "nodes": {before.nodes, after.nodes}} {
		if len(pair[0]) == 0 || len(pair[0]) != len(pair[1]) {
			t.Errorf("%s: %v before, %v after", what, pair[0], pair[1])
		}
		for k, u := range pair[0] {
			if pair[1][k] != u {
				t.Errorf("%s %s: %+v before, %+v after a failed fetch", what, k, u, pair[1][k])
			}
		}
	}
	if r, ok := after.rtt["node-b"]; !ok || r != before.rtt["node-b"] {
		t.Errorf("rtt node-b: %+v (present %v) after a failed node list, want %+v", r, ok, before.rtt["node-b"])
	}

	// Only the node list fails: pods still update, nodes keep theirs.
	atomic.StoreInt32(&api.metricsDown, 0)
	api.setMetrics(rapMetricsAt(rapTestPodMetrics, 10), rapMetricsAt(rapTestNodeMetrics, 10))
	m.refresh(context.Background())
	s := rb.snapshot()
	rapTestUsage(t, "pod", s.pods, "10.0.1.1", 0.5, 110)
	rapTestUsage(t, "node", s.nodes, "node-a", 0.75, 100)
}

func TestRAPMonitorStampsTheMetricsTimestamp(t *testing.T) {
	api, m, rb, now := rapTestMonitor(t)
	wall := new(time.Time)
	m.wall = func() time.Time { return *wall }
	nodeA := func() float64 { return rb.snapshot().nodes["node-a"].at }

	// Fetched 2 s after metrics-server's timestamp: measured at 98, not 100.
	*wall = rapTestWall(2)
	m.refresh(context.Background())
	if at := nodeA(); at != 98 {
		t.Fatalf("node-a at %v, want 98 (the metric's timestamp, not the fetch's)", at)
	}
	if at := rb.snapshot().pods["10.0.1.1"].at; at != 98 {
		t.Fatalf("pod at %v, want 98", at)
	}
	if r := rb.snapshot().rtt["node-b"]; r.at != 100 {
		t.Errorf("rtt at %v, want its own probe time 100", r.at)
	}

	// The same timestamp again (and the wall clock stepped): the same
	// measurement, the same at.
	*now, *wall = 101, rapTestWall(9)
	m.refresh(context.Background())
	if at := nodeA(); at != 98 {
		t.Errorf("node-a at %v after an unchanged timestamp, want 98 kept", at)
	}

	// A new timestamp is carried over again: 1 s before the fetch.
	*now, *wall = 102, rapTestWall(10)
	api.setMetrics(rapMetricsAt(rapTestPodMetrics, 9), rapMetricsAt(rapTestNodeMetrics, 9))
	m.refresh(context.Background())
	if at := nodeA(); at != 101 {
		t.Errorf("node-a at %v, want 101", at)
	}

	// metrics-server's clock ahead of ours: measured now, never in the future.
	*now = 103
	api.setMetrics(rapMetricsAt(rapTestPodMetrics, 60), rapMetricsAt(rapTestNodeMetrics, 60))
	m.refresh(context.Background())
	if at := nodeA(); at != 103 {
		t.Errorf("node-a at %v for a future timestamp, want clamped to 103", at)
	}
	if at := rb.snapshot().pods["10.0.1.1"].at; at != 103 {
		t.Errorf("pod at %v for a future timestamp, want clamped to 103", at)
	}
}
