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

// Tests of rap.go: kube-proxy's session affinity and endpoint bookkeeping
// kept around RAP's choice. This file also holds the helpers the other
// rap_*_test.go files share (a balancer on node-a with a settable clock,
// three nodes' endpoints, a snapshot of them). The conformance vectors
// (vectors_test.go) are the statement of the algorithm; these tests cover
// what vectors cannot.

import (
	"encoding/json"
	"net"
	"os"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kubernetes/pkg/proxy"
)

var rapTestSvc = proxy.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "default", Name: "rapsvc"}, Port: "http"}

type rapTestEP struct{ ip, node string }

// rapTestNoShuffle turns kube-proxy's shuffle of new endpoint lists off for
// the test, so that the order given is the round-robin order.
func rapTestNoShuffle(t testing.TB) {
	t.Helper()
	saved := shuffleEndpoints
	shuffleEndpoints = false
	t.Cleanup(func() { shuffleEndpoints = saved })
}

// rapReadJSON decodes the JSON file at path into dst; what says what the file
// should be, for the failure message.
func rapReadJSON(t testing.TB, path, what string, dst interface{}) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		t.Fatalf("%s: not %s: %v", path, what, err)
	}
}

// rapClassicConfig: the defaults with the classic rule, for the tests of
// docs/algorithm.md steps 1-6.
func rapClassicConfig() rapConfig {
	c := defaultRAPConfig()
	c.mode = rapModeClassic
	return c
}

// rapTestLB: a RAP balancer on node "node-a" with a settable clock and the
// shuffle off, so the endpoint order is the order given.
func rapTestLB(t testing.TB, cfg rapConfig, eps ...rapTestEP) (*LoadBalancerRR, *rapBalancer, *float64) {
	t.Helper()
	rapTestNoShuffle(t)
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

func TestRAPAffinityKeepsKubeProxySemantics(t *testing.T) {
	lb, rb, now := rapTestLB(t, rapClassicConfig())
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
	lb, rb, _ := rapTestLB(t, rapClassicConfig(), rapTestEPs...)
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
