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

// Unit tests of rap.go. The conformance vectors (vectors_test.go) are the
// statement of the algorithm; these tests cover what vectors cannot: the
// monitor against a real HTTP server, configuration from the environment,
// concurrency, and the allocation-free steady state.

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
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/kubernetes/pkg/proxy"
)

var rapTestSvc = proxy.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "default", Name: "rapsvc"}, Port: "http"}

type rapTestEP struct{ ip, node string }

// rapTestLB: a RAP balancer on node "node-a" with a settable clock and the
// shuffle off, so the endpoint order is the order given.
func rapTestLB(t testing.TB, cfg rapConfig, eps ...rapTestEP) (*LoadBalancerRR, *rapBalancer, *float64) {
	t.Helper()
	saved := shuffleEndpoints
	shuffleEndpoints = false
	t.Cleanup(func() { shuffleEndpoints = saved })
	now := new(float64)
	rb := newRAPBalancer(cfg, "node-a")
	rb.clock = func() float64 { return *now }
	lb := newLoadBalancer(rb)
	lb.OnEndpointsAdd(rapTestEndpoints(eps...))
	return lb, rb, now
}

func rapTestEndpoints(eps ...rapTestEP) *v1.Endpoints {
	obj := &v1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: rapTestSvc.Namespace, Name: rapTestSvc.Name}}
	for _, ep := range eps {
		node := ep.node
		obj.Subsets = append(obj.Subsets, v1.EndpointSubset{
			Addresses: []v1.EndpointAddress{{IP: ep.ip, NodeName: &node}},
			Ports:     []v1.EndpointPort{{Name: "http", Port: 80}},
		})
	}
	return obj
}

func rapTestNext(t testing.TB, lb *LoadBalancerRR) string {
	t.Helper()
	ep, err := lb.NextEndpoint(rapTestSvc, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1234}, false)
	if err != nil {
		t.Fatalf("NextEndpoint: %v", err)
	}
	return ep
}

func rapTestExpect(t *testing.T, lb *LoadBalancerRR, want ...string) {
	t.Helper()
	for i, w := range want {
		if got := rapTestNext(t, lb); got != w {
			t.Fatalf("request %d: got %s, want %s", i, got, w)
		}
	}
}

// Three nodes, two endpoints each; node-b is 10 ms away, node-c 40 ms.
var rapTestEPs = []rapTestEP{
	{"10.0.1.1", "node-a"}, {"10.0.2.1", "node-b"}, {"10.0.3.1", "node-c"},
	{"10.0.1.2", "node-a"}, {"10.0.2.2", "node-b"}, {"10.0.3.2", "node-c"},
}

func rapTestSnapshot(at float64, podCPU map[string]float64, nodeCPU map[string]float64) *rapSnapshot {
	s := &rapSnapshot{pods: map[string]rapUsage{}, nodes: map[string]rapUsage{}, rtt: map[string]rapRTT{
		"node-b": {ms: 10, at: at}, "node-c": {ms: 40, at: at},
	}}
	for _, ep := range rapTestEPs {
		s.pods[ep.ip] = rapUsage{cpu: podCPU[ep.ip], mem: 0.1, at: at}
	}
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		s.nodes[n] = rapUsage{cpu: nodeCPU[n], mem: 0.2, at: at}
	}
	return s
}

func TestRAPBlindIsRoundRobin(t *testing.T) {
	lb, _, _ := rapTestLB(t, defaultRAPConfig(), rapTestEPs...)
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.2.1:80", "10.0.3.1:80", "10.0.1.2:80", "10.0.2.2:80", "10.0.3.2:80", "10.0.1.1:80")
}

func TestRAPLocalPreference(t *testing.T) {
	lb, rb, _ := rapTestLB(t, defaultRAPConfig(), rapTestEPs...)
	rb.setSnapshot(rapTestSnapshot(0, nil, nil))
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.1.2:80", "10.0.1.1:80", "10.0.1.2:80")
}

func TestRAPForwardWhenLocalNodeOverloaded(t *testing.T) {
	lb, rb, _ := rapTestLB(t, defaultRAPConfig(), rapTestEPs...)
	// node-a at the CPU threshold (>= counts); node-b and node-c equally
	// loaded, node-b nearer: node-b wins on the network term.
	rb.setSnapshot(rapTestSnapshot(0, nil, map[string]float64{"node-a": 0.8, "node-b": 0.3, "node-c": 0.3}))
	rapTestExpect(t, lb, "10.0.2.1:80", "10.0.2.2:80", "10.0.2.1:80")
	// node-b busier, so that cpu outweighs the network: 0.5*(1-0.7)+0.2*0.8+0.3*0.75 = 0.535
	// against node-c: 0.5*(1-0.1)+0.2*0.8+0 = 0.61.
	rb.setSnapshot(rapTestSnapshot(0, nil, map[string]float64{"node-a": 0.9, "node-b": 0.7, "node-c": 0.1}))
	rapTestExpect(t, lb, "10.0.3.1:80", "10.0.3.2:80")
	// Back to node-b: its cursor kept its place (3 picks so far).
	rb.setSnapshot(rapTestSnapshot(0, nil, map[string]float64{"node-a": 0.9, "node-b": 0.1, "node-c": 0.1}))
	rapTestExpect(t, lb, "10.0.2.2:80", "10.0.2.1:80")
}

func TestRAPOverloadedPods(t *testing.T) {
	lb, rb, _ := rapTestLB(t, defaultRAPConfig(), rapTestEPs...)
	// One local pod overloaded: only the other local pod is used.
	rb.setSnapshot(rapTestSnapshot(0, map[string]float64{"10.0.1.1": 0.95}, nil))
	rapTestExpect(t, lb, "10.0.1.2:80", "10.0.1.2:80")
	// Both local pods overloaded: forward to node-b (nearest, same load).
	rb.setSnapshot(rapTestSnapshot(0, map[string]float64{"10.0.1.1": 0.95, "10.0.1.2": 0.99}, nil))
	rapTestExpect(t, lb, "10.0.2.1:80", "10.0.2.2:80")
	// Every pod overloaded: kube-proxy's round robin over all, never a refusal.
	all := map[string]float64{}
	for _, ep := range rapTestEPs {
		all[ep.ip] = 1
	}
	rb.setSnapshot(rapTestSnapshot(0, all, nil))
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.2.1:80", "10.0.3.1:80", "10.0.1.2:80")
}

func TestRAPStaleness(t *testing.T) {
	cfg := defaultRAPConfig() // stale after 15 s
	lb, rb, now := rapTestLB(t, cfg, rapTestEPs...)
	s := rapTestSnapshot(10, nil, nil)
	s.pods["10.0.1.1"] = rapUsage{cpu: 0.95, mem: 0.1, at: 0}
	s.pods["10.0.1.2"] = rapUsage{cpu: 0.95, mem: 0.1, at: 0}
	rb.setSnapshot(s)
	*now = 1
	rapTestExpect(t, lb, "10.0.2.1:80")
	*now = 15 // now - at == stale_after: still fresh
	rapTestExpect(t, lb, "10.0.2.2:80")
	*now = 15.5 // the local pods' samples are stale: unknown, not overloaded
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.1.2:80")
	*now = 25.5 // everything stale: blind, round robin from index 0
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.2.1:80", "10.0.3.1:80")
}

func TestRAPAffinityKeepsKubeProxySemantics(t *testing.T) {
	lb, rb, now := rapTestLB(t, defaultRAPConfig())
	// NewService before the endpoints, as the proxier does: the TTL is taken
	// only when the service is created.
	lb.NewService(rapTestSvc, v1.ServiceAffinityClientIP, 10)
	lb.OnEndpointsAdd(rapTestEndpoints(rapTestEPs...))
	rb.setSnapshot(rapTestSnapshot(0, nil, nil))
	client := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 1}
	first, _ := lb.NextEndpoint(rapTestSvc, client, false)
	if first != "10.0.1.1:80" {
		t.Fatalf("first choice %s, want the local 10.0.1.1:80", first)
	}
	// The local node becomes overloaded: the sticky client stays put.
	rb.setSnapshot(rapTestSnapshot(20, nil, map[string]float64{"node-a": 0.99}))
	*now = 9.5 // int(9.5) = 9 < 10: live
	if got, _ := lb.NextEndpoint(rapTestSvc, client, false); got != first {
		t.Fatalf("affinity hit: got %s, want %s", got, first)
	}
	*now = 19 // 9.5 s after the refresh: still live
	if got, _ := lb.NextEndpoint(rapTestSvc, client, false); got != first {
		t.Fatalf("refreshed affinity: got %s, want %s", got, first)
	}
	*now = 29 // 10 s after the last use: expired, RAP decides (forward to node-b)
	if got, _ := lb.NextEndpoint(rapTestSvc, client, false); got != "10.0.2.1:80" {
		t.Fatalf("after expiry: got %s, want 10.0.2.1:80", got)
	}
	// sessionAffinityReset skips the lookup (and overwrites the entry).
	if got, _ := lb.NextEndpoint(rapTestSvc, client, true); got != "10.0.2.2:80" {
		t.Fatalf("affinity reset: got %s, want 10.0.2.2:80", got)
	}
	if got, _ := lb.NextEndpoint(rapTestSvc, client, false); got != "10.0.2.2:80" {
		t.Fatalf("after reset: got %s, want the new entry 10.0.2.2:80", got)
	}
	lb.CleanupStaleStickySessions(rapTestSvc)
	if n := len(lb.services[rapTestSvc].affinity.affinityMap); n != 1 {
		t.Fatalf("live entry dropped by cleanup: %d entries", n)
	}
	*now = 100
	lb.CleanupStaleStickySessions(rapTestSvc)
	if n := len(lb.services[rapTestSvc].affinity.affinityMap); n != 0 {
		t.Fatalf("stale entry kept by cleanup: %d entries", n)
	}
}

func TestRAPEndpointChurn(t *testing.T) {
	lb, rb, _ := rapTestLB(t, defaultRAPConfig(), rapTestEPs...)
	rb.setSnapshot(rapTestSnapshot(0, nil, nil))
	rapTestExpect(t, lb, "10.0.1.1:80")
	old := rapTestEndpoints(rapTestEPs...)
	// Same set, one endpoint moves to node-a: the cursor stays, the plan is redone.
	moved := append([]rapTestEP(nil), rapTestEPs...)
	moved[1].node = "node-a"
	next := rapTestEndpoints(moved...)
	lb.OnEndpointsUpdate(old, next)
	rapTestExpect(t, lb, "10.0.2.1:80", "10.0.1.2:80", "10.0.1.1:80")
	// A new set: cursors reset.
	lb.OnEndpointsUpdate(next, rapTestEndpoints(rapTestEPs[:4]...))
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.1.2:80")
	// Emptied: no endpoints.
	lb.OnEndpointsUpdate(rapTestEndpoints(rapTestEPs[:4]...), rapTestEndpoints())
	if _, err := lb.NextEndpoint(rapTestSvc, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1)}, false); err != ErrMissingEndpoints {
		t.Fatalf("emptied service: err = %v, want ErrMissingEndpoints", err)
	}
}

func TestRAPDisabledByBadConfigIsRoundRobin(t *testing.T) {
	env := map[string]string{"RAP_CPU_THRESHOLD": "1.5", "RAP_NODE_NAME": "node-a"}
	rb := newRAPFromEnv(func(k string) string { return env[k] })
	if rb.enabled {
		t.Fatal("RAP enabled with RAP_CPU_THRESHOLD=1.5")
	}
	saved := shuffleEndpoints
	shuffleEndpoints = false
	defer func() { shuffleEndpoints = saved }()
	lb := newLoadBalancer(rb)
	lb.OnEndpointsAdd(rapTestEndpoints(rapTestEPs...))
	rb.setSnapshot(rapTestSnapshot(rb.now(), nil, nil))
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.2.1:80", "10.0.3.1:80")
}

func TestRAPConfigFromEnv(t *testing.T) {
	get := func(env map[string]string) func(string) string { return func(k string) string { return env[k] } }
	c, err := rapConfigFromEnv(get(nil))
	if err != nil || c != defaultRAPConfig() {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c, err = rapConfigFromEnv(get(map[string]string{"RAP_PERIOD_S": "2", "RAP_W_NET": "0", "RAP_MEM_THRESHOLD": "1"}))
	if err != nil || c.periodS != 2 || c.staleAfterS != 6 || c.wNet != 0 || c.memThreshold != 1 {
		t.Fatalf("overrides: %+v, %v", c, err)
	}
	c, err = rapConfigFromEnv(get(map[string]string{"RAP_PERIOD_S": "2", "RAP_STALE_AFTER_S": "30"}))
	if err != nil || c.staleAfterS != 30 {
		t.Fatalf("stale_after: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"RAP_PERIOD_S": "0"}, []string{"RAP_PERIOD_S", "period_s", "> 0"}},
		{map[string]string{"RAP_STALE_AFTER_S": "-1"}, []string{"RAP_STALE_AFTER_S", "> 0"}},
		{map[string]string{"RAP_CPU_THRESHOLD": "1.5"}, []string{"RAP_CPU_THRESHOLD", "cpu_threshold", "(0, 1]", "1.5"}},
		{map[string]string{"RAP_MEM_THRESHOLD": "0"}, []string{"RAP_MEM_THRESHOLD", "(0, 1]"}},
		{map[string]string{"RAP_W_MEM": "-0.1"}, []string{"RAP_W_MEM", "w_mem", ">= 0"}},
		{map[string]string{"RAP_W_CPU": "0", "RAP_W_MEM": "0", "RAP_W_NET": "0"}, []string{"w_cpu + w_mem + w_net", "> 0"}},
		{map[string]string{"RAP_W_CPU": "lots"}, []string{"RAP_W_CPU", "a number", "lots"}},
		{map[string]string{"RAP_W_NET": "NaN"}, []string{"RAP_W_NET", "a number"}},
		{map[string]string{"RAP_PERIOD_S": "+Inf"}, []string{"RAP_PERIOD_S"}},
	} {
		_, err := rapConfigFromEnv(get(tc.env))
		if err == nil {
			t.Errorf("%v: accepted", tc.env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %q", tc.env, err, w)
			}
		}
	}
}

func TestRAPMonitorWanted(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"RAP_KUBECONFIG": "/etc/k"}, true},
		{map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, true},
		{map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "RAP_ENABLE_MONITOR": "false"}, false},
		{map[string]string{"RAP_KUBECONFIG": "/etc/k", "RAP_ENABLE_MONITOR": "false"}, true},
	} {
		env := tc.env
		if got := monitorWanted(func(k string) string { return env[k] }); got != tc.want {
			t.Errorf("%v: monitorWanted = %v, want %v", env, got, tc.want)
		}
	}
}

// TestRAPSnapshotSwapConcurrent: decisions while the monitor swaps snapshots
// (run with -race). Every answer must be one of the endpoints.
func TestRAPSnapshotSwapConcurrent(t *testing.T) {
	saved := shuffleEndpoints
	shuffleEndpoints = false
	defer func() { shuffleEndpoints = saved }()
	rb := newRAPBalancer(defaultRAPConfig(), "node-a")
	lb := newLoadBalancer(rb)
	lb.OnEndpointsAdd(rapTestEndpoints(rapTestEPs...))
	valid := map[string]bool{}
	for _, ep := range rapTestEPs {
		valid[ep.ip+":80"] = true
	}
	stop := make(chan struct{})
	var swaps int64
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			load := map[string]float64{"node-a": float64(i%3) * 0.45, "node-b": float64(i%2) * 0.9}
			rb.setSnapshot(rapTestSnapshot(rb.now(), nil, load))
			atomic.AddInt64(&swaps, 1)
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				if g == 0 && i%500 == 0 { // endpoint churn too
					lb.OnEndpointsUpdate(rapTestEndpoints(rapTestEPs...), rapTestEndpoints(rapTestEPs...))
				}
				ep, err := lb.NextEndpoint(rapTestSvc, &net.TCPAddr{IP: net.IPv4(192, 0, 2, byte(g))}, false)
				if err != nil || !valid[ep] {
					errs <- ep + " " + strconv.Quote(func() string {
						if err != nil {
							return err.Error()
						}
						return ""
					}())
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(stop)
	close(errs)
	for e := range errs {
		t.Errorf("bad answer under concurrent swaps: %s", e)
	}
	if atomic.LoadInt64(&swaps) == 0 {
		t.Fatal("no snapshot swapped during the test")
	}
}

// TestRAPSteadyStateAllocFree: with a cached plan, NextEndpoint allocates nothing.
func TestRAPSteadyStateAllocFree(t *testing.T) {
	for name, snap := range map[string]*rapSnapshot{
		"local":   rapTestSnapshot(0, nil, nil),
		"forward": rapTestSnapshot(0, nil, map[string]float64{"node-a": 0.9}),
		"blind":   emptyRAPSnapshot,
	} {
		lb, rb, now := rapTestLB(t, defaultRAPConfig(), rapTestEPs...)
		rb.setSnapshot(snap)
		*now = 1
		src := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}
		rapTestNext(t, lb) // make the plan
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := lb.NextEndpoint(rapTestSvc, src, false); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per NextEndpoint, want 0", name, allocs)
		}
	}
}

// --- the monitor, against a real HTTP server on loopback ---

type rapFakeAPI struct {
	metricsDown int32 // 1: metrics.k8s.io answers 503
	nodes       v1.NodeList
	pods        v1.PodList
	podMetrics  string
	nodeMetrics string
}

func (f *rapFakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/api/v1/nodes":
		json.NewEncoder(w).Encode(&f.nodes)
	case "/api/v1/pods":
		json.NewEncoder(w).Encode(&f.pods)
	case "/apis/metrics.k8s.io/v1beta1/pods", "/apis/metrics.k8s.io/v1beta1/nodes":
		if atomic.LoadInt32(&f.metricsDown) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the server is currently unable to handle the request","reason":"ServiceUnavailable","code":503}`))
			return
		}
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
	return api, m, rb, now
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
	saved := shuffleEndpoints
	shuffleEndpoints = false
	defer func() { shuffleEndpoints = saved }()
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
	for len(rb.snapshot().nodes) == 0 && time.Now().Before(deadline) {
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
