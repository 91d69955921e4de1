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

// Tests of rap_decide.go beyond the conformance vectors: each step of the
// decision on a small three-node cluster, staleness at its boundary, and the
// allocation-free steady state of the cached plan.

import (
	"net"
	"testing"
)

func TestRAPBlindIsRoundRobin(t *testing.T) {
	lb, _, _ := rapTestLB(t, rapClassicConfig(), rapTestEPs...)
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.2.1:80", "10.0.3.1:80", "10.0.1.2:80", "10.0.2.2:80", "10.0.3.2:80", "10.0.1.1:80")
}

func TestRAPLocalPreference(t *testing.T) {
	lb, rb, _ := rapTestLB(t, rapClassicConfig(), rapTestEPs...)
	rb.setSnapshot(rapTestSnapshot(0, nil, nil))
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.1.2:80", "10.0.1.1:80", "10.0.1.2:80")
}

func TestRAPForwardWhenLocalNodeOverloaded(t *testing.T) {
	lb, rb, _ := rapTestLB(t, rapClassicConfig(), rapTestEPs...)
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
	lb, rb, _ := rapTestLB(t, rapClassicConfig(), rapTestEPs...)
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
	cfg := rapClassicConfig() // stale after 15 s
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

// TestRAPSteadyStateAllocFree: with a cached plan, NextEndpoint allocates nothing.
func TestRAPSteadyStateAllocFree(t *testing.T) {
	for name, snap := range map[string]*rapSnapshot{
		"local":   rapTestSnapshot(0, nil, nil),
		"forward": rapTestSnapshot(0, nil, map[string]float64{"node-a": 0.9}),
		"blind":   emptyRAPSnapshot,
		// round robin over U, with the endpoint rapTestNext got ejected
		"blind, one ejected": emptyRAPSnapshot,
	} {
		lb, rb, now := rapTestLB(t, rapClassicConfig(), rapTestEPs...)
		rb.setSnapshot(snap)
		*now = 1
		src := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}
		rapTestNext(t, lb) // make the plan
		if name == "blind, one ejected" {
			if _, err := lb.NextEndpoint(rapTestSvc, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1234}, true); err != nil {
				t.Fatal(err)
			}
			if lb.services[rapTestSvc].book.ejections != 1 {
				t.Fatal("the retry ejected nothing")
			}
		}
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
