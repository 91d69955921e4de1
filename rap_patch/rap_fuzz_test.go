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

// Fuzz targets (go test -fuzz; tests/e2e/test_go_fuzz.py runs each briefly,
// `python3 -m invoke fuzz-proxy` longer). Without -fuzz they replay their
// seeds as ordinary tests. Seeds are the shapes metrics-server and the API
// server really send.

import (
	"encoding/json"
	"math"
	"net"
	"reflect"
	"strconv"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/kubernetes/pkg/proxy/util"
)

func rapFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// FuzzRAPQuantity: any quantity metrics.k8s.io can send reads as a finite,
// non-negative number (negative use or capacity is no measurement).
func FuzzRAPQuantity(f *testing.F) {
	for _, s := range []string{"0", "250m", "1500m", "2", "64Mi", "1Gi", "3Gi", "12345678n", "100k", "1e3", "-1", "-500m",
		"9223372036854775807", "8Ei", "1e18", "0.5", ".5Gi", "123456789012345678901234567890"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := resource.ParseQuantity(s)
		if err != nil {
			return
		}
		list := v1.ResourceList{v1.ResourceCPU: q, v1.ResourceMemory: q}
		for _, milli := range []bool{true, false} {
			name := v1.ResourceMemory
			if milli {
				name = v1.ResourceCPU
			}
			if v := quantity(list, name, milli); !rapFinite(v) || v < 0 {
				t.Fatalf("quantity(%q, milli=%v) = %v, want finite and >= 0", s, milli, v)
			}
		}
	})
}

// FuzzRAPMetrics: a metrics.k8s.io body either fails to decode (the
// monitor's clean "malformed metrics" error) or yields usage fractions that
// are finite and non-negative, keyed only by known pods' IPs and known nodes,
// stamped no later than now.
func FuzzRAPMetrics(f *testing.F) {
	f.Add([]byte(rapTestPodMetrics))
	f.Add([]byte(rapTestNodeMetrics))
	f.Add([]byte(`{"items":[{"metadata":{"name":"limited","namespace":"default"},"timestamp":"2027-01-01T00:00:00Z","containers":[{"usage":{"cpu":"-5","memory":"-1Gi"}}]}]}`))
	f.Add([]byte(`{"items":[{"metadata":{"name":"node-a"},"usage":{"cpu":"8Ei","memory":"1e30"}}]}`))
	f.Add([]byte(`{"items":null}`))
	f.Add([]byte(`{"items":[{"metadata":{"name":"requested","namespace":"default"},"containers":[]}]}`))
	pods := []v1.Pod{
		rapTestPod("limited", "10.0.1.1", false,
			v1.ResourceRequirements{Limits: rl("500m", "128Mi")}, v1.ResourceRequirements{Limits: rl("300m", "128Mi")}),
		rapTestPod("requested", "10.0.2.1", false, v1.ResourceRequirements{Requests: rl("1", "100Mi")}),
		rapTestPod("tiny", "10.0.2.2", false, v1.ResourceRequirements{Limits: rl("1m", "1")}),
		rapTestPod("hostnet", "192.168.0.2", true, v1.ResourceRequirements{Limits: rl("1", "1Gi")}),
	}
	nodes := []v1.Node{rapTestNode("node-a", "127.0.0.1", "2", "4Gi"), rapTestNode("node-b", "127.0.0.2", "1m", "1")}
	podIPs := map[string]bool{"10.0.1.1": true, "10.0.2.1": true, "10.0.2.2": true}
	nodeNames := map[string]bool{"node-a": true, "node-b": true}
	const now = 100.0
	wall := rapTestWall(0)
	f.Fuzz(func(t *testing.T, body []byte) {
		var metrics rapMetricsList
		if json.Unmarshal(body, &metrics) != nil {
			return
		}
		stamp := func(key string, ts time.Time) float64 { return rapStamps{}.at(key, ts, now, wall) }
		check := func(what string, got map[string]rapUsage, known map[string]bool) {
			for k, u := range got {
				if !known[k] {
					t.Fatalf("%s: sample for unknown %q", what, k)
				}
				if !rapFinite(u.cpu) || !rapFinite(u.mem) || u.cpu < 0 || u.mem < 0 {
					t.Fatalf("%s %s: usage %+v, want finite and >= 0", what, k, u)
				}
				if math.IsNaN(u.at) || u.at > now {
					t.Fatalf("%s %s: stamped at %v, after now %v", what, k, u.at, now)
				}
			}
		}
		check("pods", podUsageByIP(pods, &metrics, stamp), podIPs)
		check("nodes", nodeUsageByName(nodes, &metrics, stamp), nodeNames)
	})
}

// FuzzRAPEndpoints: RAP's candidate list is kube-proxy's own
// (BuildPortsToEndpointsMap, same order) with each address's IP and node
// beside it, and the balancer answers every port of it with one of its
// addresses, through add, update and delete.
func FuzzRAPEndpoints(f *testing.F) {
	f.Add([]byte(`{"metadata":{"name":"web","namespace":"default"},"subsets":[{"addresses":[{"ip":"10.0.1.1","nodeName":"node-a"},{"ip":"10.0.2.1","nodeName":"node-b"}],"ports":[{"name":"http","port":80,"protocol":"TCP"}]}]}`))
	f.Add([]byte(`{"metadata":{"name":"web","namespace":"default"},"subsets":[{"addresses":[{"ip":"fd00::1"},{"ip":""}],"notReadyAddresses":[{"ip":"10.0.9.9"}],"ports":[{"port":0},{"name":"b","port":-1},{"name":"c","port":65535}]},{"addresses":[{"ip":"10.0.1.1","nodeName":""}],"ports":[{"port":8080}]}]}`))
	f.Add([]byte(`{"metadata":{"name":"web","namespace":"default"},"subsets":[{"addresses":[{"ip":"10.0.1.1","nodeName":"node-a"},{"ip":"10.0.1.1","nodeName":"node-b"}],"ports":[{"name":"p","port":80},{"name":"p","port":81}]}]}`))
	f.Add([]byte(`{"metadata":{"name":"web","namespace":"default"},"subsets":[]}`))
	// Found by the fuzzer: an "IP" no API server admits.
	f.Add([]byte(`{"metadata":{"name":"web","namespace":"default"},"subsets":[{"addresses":[{"ip":"]"}],"ports":[{"port":1}]}]}`))
	f.Add([]byte(`{"metadata":{"name":"web","namespace":"default"},"subsets":[{"addresses":[{"ip":"::0"}],"ports":[{"port":70000}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var eps v1.Endpoints
		if json.Unmarshal(body, &eps) != nil {
			return
		}
		built := buildPortsToRAPEndpoints(&eps)
		want := util.BuildPortsToEndpointsMap(&eps)
		got := map[string][]string{}
		for port, list := range built {
			got[port] = addrsOf(list)
			for _, ep := range list {
				if ep.ip == "" {
					t.Fatalf("%+v: an address without an IP", ep)
				}
				// kube-apiserver admits only IPs (ValidateEndpoints); for text that is
				// none, such as "]", kube-proxy's own map joins it as it is, and so does
				// this one (the comparison below), so only an IP must split back.
				if net.ParseIP(ep.ip) == nil {
					continue
				}
				host, p, err := net.SplitHostPort(ep.addr)
				if err != nil || host != ep.ip {
					t.Fatalf("%+v: address does not split back into its IP (%q, %v)", ep, host, err)
				}
				// kube-apiserver admits only ports 1..65535 too; kube-proxy's map copies any other.
				if n, err := strconv.Atoi(p); err != nil || (rapFuzzPortsAdmitted(&eps) && (n <= 0 || n > 65535)) {
					t.Fatalf("%+v: port %q", ep, p)
				}
			}
		}
		if len(got) != 0 || len(want) != 0 {
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("candidates %v, kube-proxy's %v", got, want)
			}
		}
		rapFuzzBalance(t, &eps, want)
	})
}

// rapFuzzPortsAdmitted: every port of eps is one kube-apiserver admits (1..65535).
func rapFuzzPortsAdmitted(eps *v1.Endpoints) bool {
	for _, ss := range eps.Subsets {
		for _, p := range ss.Ports {
			if p.Port <= 0 || p.Port > 65535 {
				return false
			}
		}
	}
	return true
}

// rapFuzzBalance drives the balancer with eps: each port answers one of its
// own addresses.
func rapFuzzBalance(t *testing.T, eps *v1.Endpoints, want map[string][]string) {
	rb := newRAPBalancer(defaultRAPConfig(), "node-a")
	rb.clock = func() float64 { return 100 }
	rb.setSnapshot(rapTestSnapshot(100, map[string]float64{"10.0.1.1": 0.9}, map[string]float64{"node-a": 0.5, "node-b": 0.1}))
	lb := newLoadBalancer(rb)
	lb.OnEndpointsAdd(eps)
	ask := func(when string) {
		for port, addrs := range want {
			svc := servicePort(eps, port)
			for i := 0; i < len(addrs)+1; i++ {
				ep, err := lb.NextEndpoint(svc, nil, i == len(addrs))
				if err != nil {
					t.Fatalf("%s: port %q: %v", when, port, err)
				}
				if !rapFuzzContains(addrs, ep) {
					t.Fatalf("%s: port %q answered %q, not one of %v", when, port, ep, addrs)
				}
			}
		}
	}
	ask("after add")
	lb.OnEndpointsUpdate(eps, eps)
	ask("after update")
	lb.OnEndpointsDelete(eps)
	for port := range want {
		if lb.ServiceHasEndpoints(servicePort(eps, port)) {
			t.Fatalf("port %q still has endpoints after delete", port)
		}
	}
}

func rapFuzzContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
