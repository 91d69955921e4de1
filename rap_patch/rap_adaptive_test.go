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

// Tests of rap_adaptive.go: the cost and its terms, the candidates, the tie
// rules, the cached terms against working them out anew, and the
// allocation-free steady state. The endpoints are rapTestEPs: positions
// 0 a1, 1 b1, 2 c1, 3 a2, 4 b2, 5 c2 (a local; b 10 ms away, c 40 ms).

import (
	"math"
	"math/rand"
	"net"
	"strconv"
	"testing"
)

const (
	a1, b1, c1 = "10.0.1.1:80", "10.0.2.1:80", "10.0.3.1:80"
	a2, b2, c2 = "10.0.1.2:80", "10.0.2.2:80", "10.0.3.2:80"
)

// rapIdleSnapshot: every pod and node sampled at at, using nothing but the
// CPU given (memory 0), so that headroom = 1 - cpu/cpu_threshold and an idle
// pod costs exactly active + 1 plus its network term.
func rapIdleSnapshot(at float64, podCPU, nodeCPU map[string]float64) *rapSnapshot {
	s := rapTestSnapshot(at, podCPU, nodeCPU)
	for ip, u := range s.pods {
		u.mem = 0
		s.pods[ip] = u
	}
	for n, u := range s.nodes {
		u.mem = 0
		s.nodes[n] = u
	}
	return s
}

func rapTestDone(lb *LoadBalancerRR, endpoints ...string) {
	for _, ep := range endpoints {
		lb.ConnectionDone(rapTestSvc, ep)
	}
}

// rapTestTerms: the terms the last adaptive decision used.
func rapTestTerms(lb *LoadBalancerRR) []rapTerm { return lb.services[rapTestSvc].terms.terms }

func TestRAPAdaptiveBlindIsRoundRobin(t *testing.T) {
	lb, rb, _ := rapTestLB(t, defaultRAPConfig(), rapTestEPs...)
	// RTTs alone are no resource data.
	rb.setSnapshot(&rapSnapshot{rtt: map[string]rapRTT{"node-b": {ms: 1}}})
	rapTestExpect(t, lb, a1, b1, c1, a2, b2, c2, a1)
	if !lb.services[rapTestSvc].terms.blind {
		t.Fatal("terms not blind without resource data")
	}
}

// With headroom 1 everywhere and rtt_per_conn_ms 10, one more connection at a
// local pod costs as much as node-b's 10 ms: the local pods fill until they
// carry one more connection each than node-b's, and node-c (40 ms = 4
// connections) is not used at this load.
func TestRAPAdaptiveSpillsOnlyTheExcess(t *testing.T) {
	lb, rb, _ := rapTestLB(t, defaultRAPConfig(), rapTestEPs...)
	rb.setSnapshot(rapIdleSnapshot(0, nil, nil))
	rapTestExpect(t, lb,
		a1, // a1 1 = a2 1 < b 2: tie at rtt 0, a1 first from rr 0
		a2, // a2 1 < a1 2
		a1, // a1 = a2 = b1 = b2 = 2: rtt 0 wins; a1 first from rr 4
		a2, // a2 2 = b 2, lower rtt
		b2, // locals 3, b1 = b2 = 2: b2 first from rr 4
		b1, // b1 2
		a2, // all 3: locals by rtt, a2 first from rr 2
		a1, // a1 3 < every other 4
	)
	// Ending connections make their endpoint cheap again; a done below 0 is ignored.
	rapTestDone(lb, b1, b1, b1)
	rapTestExpect(t, lb, b1) // b1 (0+1)+1 = 2 < every other 4
}

func TestRAPAdaptiveHeadroomSteers(t *testing.T) {
	cfg := defaultRAPConfig()
	cfg.cpuThreshold = 0.5 // so that the headrooms below are exact
	lb, rb, _ := rapTestLB(t, cfg, rapTestEPs...)
	// a1 at 0.375 of its 0.5: headroom 0.25, one connection costs 4; a2 at
	// 0.25: headroom 0.5, costs 2; node-b's idle pods 1 + 1.
	rb.setSnapshot(rapIdleSnapshot(0, map[string]float64{"10.0.1.1": 0.375, "10.0.1.2": 0.25}, nil))
	rapTestExpect(t, lb,
		a2, // a2 2 = b 2: lower rtt
		b2, // a1 = a2 = 4, b1 = b2 = 2: b2 first from rr 4
		b1, // b1 2
		b2, // b1 = b2 = 3: b2 first from rr 2
		b1, // b1 3
		a2, // a1 = a2 = b1 = b2 = 4: rtt 0, a2 first from rr 2
	)
	if h := rapTestTerms(lb)[0].headroom; h != 0.25 {
		t.Errorf("a1's headroom %v, want 0.25", h)
	}
}

func TestRAPAdaptiveHeadroomFloorAndNode(t *testing.T) {
	cfg := defaultRAPConfig()
	cfg.cpuThreshold, cfg.memThreshold = 0.5, 0.5
	lb, rb, _ := rapTestLB(t, cfg, rapTestEPs...)
	s := rapIdleSnapshot(0, map[string]float64{"10.0.1.1": 1.5, "10.0.2.1": 0.25}, map[string]float64{"node-c": 0.125})
	s.pods["10.0.1.2"] = rapUsage{cpu: 0, mem: 0.375, at: 0} // memory is the tighter: 0.25
	s.nodes["node-b"] = rapUsage{cpu: 0, mem: 0.125, at: 0}  // 0.75, above its pods' 0.5 and 1
	rb.setSnapshot(s)
	rapTestNext(t, lb)
	for i, want := range []float64{rapHeadroomFloor, 0.5, 0.75, 0.25, 0.75, 0.75} {
		if got := rapTestTerms(lb)[i].headroom; got != want {
			t.Errorf("%s: headroom %v, want %v", rapTestEPs[i].ip, got, want)
		}
	}
}

func TestRAPAdaptiveRTTTerm(t *testing.T) {
	eps := []rapTestEP{{"10.0.1.1", "node-a"}, {"10.0.4.1", "node-d"}, {"10.0.9.9", ""}, {"10.0.2.1", "node-b"}}
	for _, local := range []string{"node-a", ""} {
		lb, _, _ := rapTestLB(t, defaultRAPConfig(), eps...)
		lb.rap.localNode = local
		s := rapIdleSnapshot(0, nil, nil)
		s.rtt["node-a"] = rapRTT{ms: 99, at: 0} // the local node's own entry counts for nothing
		s.pods["10.0.4.1"] = rapUsage{at: 0}
		lb.rap.setSnapshot(s)
		rapTestNext(t, lb)
		// node-d has no RTT and the selectorless endpoint no node: both rtt_max,
		// the largest fresh RTT to another node (node-c's 40 ms, not node-a's
		// own 99); a node-less endpoint is never local, even on a node-less proxy.
		want := []float64{0, 40, 40, 10}
		if local == "" {
			want = []float64{99, 99, 99, 10}
		}
		for i, w := range want {
			if got := rapTestTerms(lb)[i]; got.rtt != w || got.netCost != w/10 {
				t.Errorf("local %q, %s: rtt %v (cost %v), want %v", local, eps[i].ip, got.rtt, got.netCost, w)
			}
		}
	}
}

// rapHotScenario: the local pods' CPU in three successive snapshots, with a
// network term so cheap (rtt_per_conn_ms 0.1: node-b costs 100) that only
// overload, never cost, sends anything away.
func TestRAPAdaptiveHysteresisKeepsHotPodsOut(t *testing.T) {
	cfg := defaultRAPConfig()
	cfg.rttPerConnMS = 0.1
	lb, rb, _ := rapTestLB(t, cfg, rapTestEPs...)
	local := func(cpu float64) *rapSnapshot {
		return rapIdleSnapshot(0, map[string]float64{"10.0.1.1": cpu, "10.0.1.2": cpu}, nil)
	}
	rb.setSnapshot(local(0.85)) // hot: at or above 0.8
	rapTestExpect(t, lb, b1, b2)
	rb.setSnapshot(local(0.75)) // below 0.8 but not below 0.8 - 0.1: still hot, though cheaper (16) than node-b (102)
	rapTestExpect(t, lb, b1)
	rb.setSnapshot(local(0.65)) // below 0.7: cooled; a2 is first from rr 2
	rapTestExpect(t, lb, a2, a1)
	rb.setSnapshot(local(0.75)) // not hot before, so 0.8 is the threshold again: 32 against 102
	rapTestExpect(t, lb, a2)
}

func TestRAPAdaptiveAllOverloadedUsesAll(t *testing.T) {
	lb, rb, _ := rapTestLB(t, defaultRAPConfig(), rapTestEPs...)
	all := map[string]float64{}
	for _, ep := range rapTestEPs {
		all[ep.ip] = 0.9
	}
	rb.setSnapshot(rapIdleSnapshot(0, all, nil))
	// Every pod at the floor (cost 20 per connection): never refused, the
	// cheapest of all wins: a1 20, a2 20, then b 21 against the locals' 40.
	rapTestExpect(t, lb, a1, a2, b2, b1)
}

func TestRAPAdaptiveStaleInputsAreAbsent(t *testing.T) {
	lb, rb, now := rapTestLB(t, defaultRAPConfig(), rapTestEPs...) // stale after 15 s
	s := rapIdleSnapshot(10, nil, nil)
	s.pods["10.0.1.1"] = rapUsage{cpu: 0.9, at: 0}
	s.pods["10.0.1.2"] = rapUsage{cpu: 0.9, at: 0}
	rb.setSnapshot(s)
	*now = 15 // the local pods' samples are fresh at the boundary: hot, out
	rapTestExpect(t, lb, b1)
	*now = 15.5 // stale: absent, so not hot, headroom 1; a2 first from rr 2
	rapTestExpect(t, lb, a2, a1)
	*now = 25.5 // everything stale: blind, kube-proxy's round robin from where it stands
	rapTestExpect(t, lb, a1, b1)
}

// A new endpoint set resets rr; a node name changing in the same set keeps it.
func TestRAPAdaptiveCursor(t *testing.T) {
	eps := []rapTestEP{{"10.0.1.1", "node-a"}, {"10.0.1.2", "node-a"}, {"10.0.2.1", "node-b"}}
	lb, rb, _ := rapTestLB(t, defaultRAPConfig(), eps...)
	rb.setSnapshot(rapIdleSnapshot(0, nil, nil))
	rapTestExpect(t, lb, a1) // ties at 1; rr 0 -> 1
	rapTestDone(lb, a1)
	moved := append([]rapTestEP(nil), eps...)
	moved[2].node = "node-c"
	lb.OnEndpointsUpdate(rapTestEndpoints(eps...), rapTestEndpoints(moved...))
	rapTestExpect(t, lb, a2) // rr kept at 1
	rapTestDone(lb, a2)
	lb.OnEndpointsUpdate(rapTestEndpoints(moved...), rapTestEndpoints(append(moved, rapTestEP{"10.0.1.3", "node-a"})...))
	rapTestExpect(t, lb, a1) // a new set: rr back to 0
}

func TestRAPAdaptiveEjectedEndpointLeftOut(t *testing.T) {
	cfg := defaultRAPConfig() // eject_s 10
	cfg.rttPerConnMS = 0.1
	lb, rb, now := rapTestLB(t, cfg, rapTestEPs...)
	rb.setSnapshot(rapIdleSnapshot(0, nil, nil))
	src := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 5000}
	*now = 1
	if got, _ := lb.NextEndpoint(rapTestSvc, src, false); got != a1 {
		t.Fatalf("first answer %s, want a1", got)
	}
	// The dial to a1 failed: a1 is ejected until 11 and its connection uncounted.
	if got, _ := lb.NextEndpoint(rapTestSvc, src, true); got != a2 {
		t.Fatalf("retry got %s, want a2", got)
	}
	*now = 11 // ejected_until is inclusive (a new snapshot: the terms are worked out anew here)
	rb.setSnapshot(rapIdleSnapshot(0, nil, nil))
	rapTestExpect(t, lb, a2)
	*now = 11.5 // back, and with no connection counted, the cheapest
	rapTestExpect(t, lb, a1)
}

func TestRAPLastFresh(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	cases := [][2]float64{{0.1, 0.2}, {0, 15}, {1e20, 15}, {3.3, 0.3}, {-0.7, 0.1}}
	for i := 0; i < 2000; i++ {
		cases = append(cases, [2]float64{r.Float64() * 1e4, r.Float64() * 30})
	}
	for _, c := range cases {
		at, stale := c[0], c[1]
		last := rapLastFresh(at, stale)
		if !(last-at <= stale) || !(math.Nextafter(last, math.Inf(1))-at > stale) {
			t.Fatalf("rapLastFresh(%v, %v) = %v: fresh there %v, just after %v", at, stale, last,
				last-at <= stale, math.Nextafter(last, math.Inf(1))-at <= stale)
		}
	}
}

// TestRAPAdaptiveCacheIsInvisible: a balancer reusing its terms answers
// exactly as one that works them out for every connection, through snapshot
// swaps, inputs going stale on inexact float boundaries, retries, ejections
// running out, connections ending and endpoint churn.
func TestRAPAdaptiveCacheIsInvisible(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		cfg := defaultRAPConfig()
		cfg.staleAfterS, cfg.ejectS = 0.3, 0.7
		cached, rbC, nowC := rapTestLB(t, cfg, rapTestEPs...)
		fresh, rbF, nowF := rapTestLB(t, cfg, rapTestEPs...)
		r := rand.New(rand.NewSource(seed))
		now := 0.0
		for step := 0; step < 400; step++ {
			now += 0.1 // accumulates rounding: now - at hits stale_after's last bit
			*nowC, *nowF = now, now
			switch k := r.Intn(10); {
			case k == 0:
				s := rapRandomSnapshot(r, now)
				rbC.setSnapshot(s)
				rbF.setSnapshot(s)
			case k == 1:
				eps := rapTestEPs[:2+r.Intn(len(rapTestEPs)-1)]
				for _, lb := range []*LoadBalancerRR{cached, fresh} {
					lb.OnEndpointsAdd(rapTestEndpoints(eps...))
				}
			default:
				src := &net.TCPAddr{IP: net.IPv4(192, 0, 2, byte(r.Intn(4))), Port: 1}
				reset := r.Intn(4) == 0
				fresh.services[rapTestSvc].terms.valid = false
				got, err1 := cached.NextEndpoint(rapTestSvc, src, reset)
				want, err2 := fresh.NextEndpoint(rapTestSvc, src, reset)
				if got != want || (err1 == nil) != (err2 == nil) {
					t.Fatalf("seed %d step %d (now %v): cached terms answer %s, fresh ones %s", seed, step, now, got, want)
				}
				if r.Intn(2) == 0 {
					rapTestDone(cached, got)
					rapTestDone(fresh, got)
				}
			}
		}
	}
}

// rapRandomSnapshot: samples of random age (some already stale, some going
// stale soon) and load (some hot), taken at multiples of 0.1.
func rapRandomSnapshot(r *rand.Rand, now float64) *rapSnapshot {
	s := &rapSnapshot{pods: map[string]rapUsage{}, nodes: map[string]rapUsage{}, rtt: map[string]rapRTT{}}
	at := func() float64 { return now - float64(r.Intn(5))*0.1 }
	for _, ep := range rapTestEPs {
		if r.Intn(4) > 0 {
			s.pods[ep.ip] = rapUsage{cpu: r.Float64(), mem: r.Float64() * 0.9, at: at()}
		}
	}
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		if r.Intn(3) > 0 {
			s.nodes[n] = rapUsage{cpu: r.Float64(), mem: r.Float64() * 0.9, at: at()}
		}
		if n != "node-a" && r.Intn(3) > 0 {
			s.rtt[n] = rapRTT{ms: float64(r.Intn(50)), at: at()}
		}
	}
	return s
}

// TestRAPAdaptiveSteadyStateAllocFree: with cached terms, deciding and
// counting a connection allocates nothing, also while an endpoint is ejected
// and when blind.
func TestRAPAdaptiveSteadyStateAllocFree(t *testing.T) {
	for _, tc := range []struct {
		name           string
		metrics, eject bool
	}{{"cost", true, false}, {"cost, one ejected", true, true}, {"blind", false, false}, {"blind, one ejected", false, true}} {
		cfg := defaultRAPConfig()
		cfg.ejectS = 1e6
		lb, rb, now := rapTestLB(t, cfg, rapTestEPs...)
		if tc.metrics {
			rb.setSnapshot(rapIdleSnapshot(0, nil, nil))
		}
		src := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1}
		*now = 1
		for _, reset := range []bool{false, tc.eject} { // the reset ejects the first answer
			if _, err := lb.NextEndpoint(rapTestSvc, src, reset); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := lb.services[rapTestSvc].book.ejections, map[bool]int{false: 0, true: 1}[tc.eject]; got != want {
			t.Fatalf("%s: %d endpoints ejected, want %d", tc.name, got, want)
		}
		allocs := testing.AllocsPerRun(1000, func() {
			ep, err := lb.NextEndpoint(rapTestSvc, src, false)
			if err != nil {
				t.Fatal(err)
			}
			lb.ConnectionDone(rapTestSvc, ep)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per NextEndpoint, want 0", tc.name, allocs)
		}
	}
}

func TestRAPAdaptiveManyEndpointsPicksCheapest(t *testing.T) {
	// One pass over many endpoints still finds the single cheapest one.
	var eps []rapTestEP
	for i := 0; i < 50; i++ {
		eps = append(eps, rapTestEP{"10.0.2." + strconv.Itoa(i+1), "node-b"})
	}
	lb, rb, _ := rapTestLB(t, defaultRAPConfig(), eps...)
	s := rapIdleSnapshot(0, nil, nil)
	for _, ep := range eps {
		s.pods[ep.ip] = rapUsage{cpu: 0.4, at: 0}
	}
	s.pods["10.0.2.37"] = rapUsage{cpu: 0.3, at: 0}
	rb.setSnapshot(s)
	rapTestExpect(t, lb, "10.0.2.37:80")
}
