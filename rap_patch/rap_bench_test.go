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

// RAP-only benchmarks: NextEndpoint making a real RAP decision with fresh
// metrics for every pod, node and RTT (see bench_api_test.go for the stock
// comparison and how to run both). The classic mode:
//
//	BenchmarkRAPNextEndpoint/local/endpoints=N    the local node has capacity (cached plan)
//	BenchmarkRAPNextEndpoint/forward/endpoints=N  local node overloaded: scored forward (cached plan)
//	BenchmarkRAPNextEndpoint/replan/endpoints=N   a new snapshot before every call: the full
//	                                              decision each time (worst case; the monitor
//	                                              really swaps once per period)
//
// The adaptive mode, whose every decision is a pass over the endpoints:
//
//	BenchmarkRAPAdaptiveNextEndpoint/steady/endpoints=N   cached terms, each connection
//	                                                      ended before the next (allocation-free)
//	BenchmarkRAPAdaptiveNextEndpoint/retry/endpoints=N    every other call a retry that ejects
//	                                                      (terms redone each time)
//	BenchmarkRAPAdaptiveNextEndpoint/replan/endpoints=N   a new snapshot before every call

import (
	"net"
	"strconv"
	"testing"
)

// benchRAPSnapshot: fresh samples for every endpoint's pod, every node and
// every RTT; node-0 (local) is overloaded when localOverloaded.
func benchRAPSnapshot(n int, at float64, localOverloaded bool) *rapSnapshot {
	s := &rapSnapshot{pods: map[string]rapUsage{}, nodes: map[string]rapUsage{}, rtt: map[string]rapRTT{}}
	for i := 0; i < n; i++ {
		s.pods[benchIP(i)] = rapUsage{cpu: 0.2 + float64(i%5)*0.1, mem: 0.3, at: at}
	}
	nodes := benchNodes(n)
	for j := 0; j < nodes; j++ {
		name := "node-" + strconv.Itoa(j)
		s.nodes[name] = rapUsage{cpu: 0.1 + float64(j%7)*0.1, mem: 0.2 + float64(j%3)*0.1, at: at}
		if j > 0 {
			s.rtt[name] = rapRTT{ms: float64(1 + j%13), at: at}
		}
	}
	if localOverloaded {
		s.nodes["node-0"] = rapUsage{cpu: 0.95, mem: 0.5, at: at}
	}
	return s
}

func BenchmarkRAPNextEndpoint(b *testing.B) {
	src := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}
	for _, mode := range []string{"local", "forward", "replan"} {
		for _, n := range benchSizes {
			b.Run(mode+"/endpoints="+strconv.Itoa(n), func(b *testing.B) {
				cfg := defaultRAPConfig()
				cfg.mode = rapModeClassic
				cfg.staleAfterS = 3600 // samples stay fresh for the whole run
				rb := newRAPBalancer(cfg, "node-0")
				lb := newLoadBalancer(rb)
				lb.OnEndpointsAdd(benchEndpoints(n))
				now := rb.now()
				snaps := []*rapSnapshot{
					benchRAPSnapshot(n, now, mode != "local"),
					benchRAPSnapshot(n, now, mode != "local"),
				}
				rb.setSnapshot(snaps[0])
				if _, err := lb.NextEndpoint(benchSvc, src, false); err != nil {
					b.Fatal(err)
				}
				if p := lb.services[benchSvc].plan; p.roundRobin || (mode == "local") != (p.group == "node-0") {
					b.Fatalf("%s: unexpected plan %q", mode, p.reason)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if mode == "replan" {
						rb.setSnapshot(snaps[i&1])
					}
					if _, err := lb.NextEndpoint(benchSvc, src, false); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkRAPAdaptiveNextEndpoint(b *testing.B) {
	src := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}
	for _, mode := range []string{"steady", "retry", "replan"} {
		for _, n := range benchSizes {
			b.Run(mode+"/endpoints="+strconv.Itoa(n), func(b *testing.B) {
				cfg := defaultRAPConfig()
				cfg.staleAfterS = 3600 // samples stay fresh for the whole run
				cfg.ejectS = 1e-9      // an ejection is over by the next call
				rb := newRAPBalancer(cfg, "node-0")
				lb := newLoadBalancer(rb)
				lb.OnEndpointsAdd(benchEndpoints(n))
				now := rb.now()
				snaps := []*rapSnapshot{benchRAPSnapshot(n, now, true), benchRAPSnapshot(n, now, true)}
				rb.setSnapshot(snaps[0])
				if _, err := lb.NextEndpoint(benchSvc, src, false); err != nil {
					b.Fatal(err)
				}
				if lb.services[benchSvc].terms.blind {
					b.Fatal("adaptive terms are blind with fresh metrics")
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if mode == "replan" {
						rb.setSnapshot(snaps[i&1])
					}
					ep, err := lb.NextEndpoint(benchSvc, src, mode == "retry" && i&1 == 1)
					if err != nil {
						b.Fatal(err)
					}
					lb.ConnectionDone(benchSvc, ep)
				}
			})
		}
	}
}
