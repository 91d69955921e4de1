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

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kubernetes/pkg/proxy"
)

type vecEndpoint struct {
	IP   string `json:"ip"`
	Port int32  `json:"port"`
	Node string `json:"node"`
}

type vecUsage struct {
	CPU float64 `json:"cpu"`
	Mem float64 `json:"mem"`
	At  float64 `json:"at"`
}

type vecMetrics struct {
	Pods  map[string]vecUsage `json:"pods"`
	Nodes map[string]vecUsage `json:"nodes"`
	RTT   map[string]struct {
		MS float64 `json:"ms"`
		At float64 `json:"at"`
	} `json:"rtt_ms"`
}

type vecRequest struct {
	Client        string  `json:"client"`
	At            float64 `json:"at"`
	AffinityReset bool    `json:"affinity_reset"`
}

type vecStep struct {
	Request      *vecRequest    `json:"request"`
	Expect       *string        `json:"expect"`
	ExpectError  *string        `json:"expect_error"`
	SetEndpoints *[]vecEndpoint `json:"set_endpoints"`
	SetMetrics   *vecMetrics    `json:"set_metrics"`
}

type vector struct {
	Name      string              `json:"name"`
	LocalNode string              `json:"local_node"`
	Config    map[string]*float64 `json:"config"`
	Service   struct {
		Affinity         string `json:"affinity"`
		AffinityTimeoutS int    `json:"affinity_timeout_s"`
	} `json:"service"`
	Endpoints []vecEndpoint `json:"endpoints"`
	Metrics   vecMetrics    `json:"metrics"`
	Steps     []vecStep     `json:"steps"`
}

var vecService = proxy.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "default", Name: "vector"}, Port: "http"}

// vecConfig mirrors RapConfig.from_mapping: defaults, stale_after = 3 x period
// unless given, then validation (rap_config.go's buildRAPConfig, as for the
// environment).
func vecConfig(m map[string]*float64) (rapConfig, error) {
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
		*s.dst = *v
		return true, nil
	})
}

func vecEndpointsObject(eps []vecEndpoint) *v1.Endpoints {
	obj := &v1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: vecService.Namespace, Name: vecService.Name}}
	// One subset per endpoint keeps the vector's order through
	// BuildPortsToEndpoints (addresses within a subset would be grouped by port).
	for _, ep := range eps {
		node := ep.Node
		obj.Subsets = append(obj.Subsets, v1.EndpointSubset{
			Addresses: []v1.EndpointAddress{{IP: ep.IP, NodeName: &node}},
			Ports:     []v1.EndpointPort{{Name: vecService.Port, Port: ep.Port, Protocol: v1.ProtocolTCP}},
		})
	}
	return obj
}

func vecSnapshot(m vecMetrics) *rapSnapshot {
	s := &rapSnapshot{pods: map[string]rapUsage{}, nodes: map[string]rapUsage{}, rtt: map[string]rapRTT{}}
	for ip, u := range m.Pods {
		s.pods[ip] = rapUsage{cpu: u.CPU, mem: u.Mem, at: u.At}
	}
	for n, u := range m.Nodes {
		s.nodes[n] = rapUsage{cpu: u.CPU, mem: u.Mem, at: u.At}
	}
	for n, r := range m.RTT {
		s.rtt[n] = rapRTT{ms: r.MS, at: r.At}
	}
	return s
}

// runVector replays one vector; it returns one line per mismatching request.
func runVector(v *vector) ([]string, int, error) {
	cfg, err := vecConfig(v.Config)
	if err != nil {
		return nil, 0, err
	}
	var now float64
	rb := newRAPBalancer(cfg, v.LocalNode)
	rb.clock = func() float64 { return now }
	lb := newLoadBalancer(rb)

	affinity := v1.ServiceAffinityNone
	switch v.Service.Affinity {
	case "ClientIP":
		affinity = v1.ServiceAffinityClientIP
	case "None":
	default:
		return nil, 0, fmt.Errorf("service.affinity: %q is not None or ClientIP", v.Service.Affinity)
	}
	if err := lb.NewService(vecService, affinity, v.Service.AffinityTimeoutS); err != nil {
		return nil, 0, err
	}
	current := vecEndpointsObject(v.Endpoints)
	lb.OnEndpointsAdd(current)
	rb.setSnapshot(vecSnapshot(v.Metrics))

	var mismatches []string
	requests := 0
	for i, step := range v.Steps {
		switch {
		case step.SetEndpoints != nil:
			next := vecEndpointsObject(*step.SetEndpoints)
			lb.OnEndpointsUpdate(current, next)
			current = next
		case step.SetMetrics != nil:
			rb.setSnapshot(vecSnapshot(*step.SetMetrics))
		case step.Request != nil:
			now = step.Request.At
			ip := net.ParseIP(step.Request.Client)
			if ip == nil {
				return nil, 0, fmt.Errorf("steps[%d].request.client: %q is not an IP", i, step.Request.Client)
			}
			expected := ""
			switch {
			case step.Expect != nil:
				expected = *step.Expect
			case step.ExpectError != nil:
				expected = "error " + *step.ExpectError
			default:
				return nil, 0, fmt.Errorf("steps[%d]: a request without expect or expect_error", i)
			}
			got, err := lb.NextEndpoint(vecService, &net.TCPAddr{IP: ip, Port: 40000 + i}, step.Request.AffinityReset)
			actual := got
			if errors.Is(err, ErrMissingEndpoints) {
				actual = "error no-endpoints"
			} else if err != nil {
				actual = "error " + err.Error()
			}
			if actual != expected {
				mismatches = append(mismatches, fmt.Sprintf("%s: request %d (step %d): expected %s, got %s",
					v.Name, requests, i, expected, actual))
			}
			requests++
		default:
			return nil, 0, fmt.Errorf("steps[%d]: not a request, set_endpoints or set_metrics", i)
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
