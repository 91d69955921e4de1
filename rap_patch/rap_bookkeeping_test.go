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

// Tests of rap_bookkeeping.go: active counts, the retry that reports a
// failed dial, ejection and the usable set in both modes, churn, the bound
// on last[], the client address key, and ConnectionDone racing NextEndpoint
// (run with -race). Endpoint names as in rap_adaptive_test.go.

import (
	"net"
	"os"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func rapTestActive(lb *LoadBalancerRR, ep string) int {
	if c := lb.services[rapTestSvc].book.conns[ep]; c != nil {
		return c.active
	}
	return -1 // not listed
}

func rapTestSrc(port int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: port}
}

func rapTestAsk(t *testing.T, lb *LoadBalancerRR, src net.Addr, reset bool, want string) {
	t.Helper()
	got, err := lb.NextEndpoint(rapTestSvc, src, reset)
	if err != nil || got != want {
		t.Fatalf("NextEndpoint(%v, reset %v) = %s, %v; want %s", src, reset, got, err, want)
	}
}

func TestRAPActiveCounts(t *testing.T) {
	lb, _, _ := rapTestLB(t, defaultRAPConfig())
	lb.NewService(rapTestSvc, v1.ServiceAffinityClientIP, 0)
	lb.OnEndpointsAdd(rapTestEndpoints(rapTestEPs[:2]...))
	rapTestAsk(t, lb, rapTestSrc(1), false, a1)
	rapTestAsk(t, lb, rapTestSrc(2), false, a1) // an affinity hit counts too
	if got := rapTestActive(lb, a1); got != 2 {
		t.Fatalf("active[a1] = %d after two answers, want 2", got)
	}
	rapTestDone(lb, a1, a1, a1)
	if got := rapTestActive(lb, a1); got != 0 {
		t.Fatalf("active[a1] = %d after three dones, want 0 (never below)", got)
	}
	// Unknown endpoints and services are ignored.
	rapTestDone(lb, "10.9.9.9:80")
	lb.ConnectionDone(vecPort("nope"), a1)
}

// The retry of a dial that failed, in the classic mode's round robin (blind):
// the failed endpoint is skipped until ejected_until, inclusive.
func TestRAPRetryEjectsInRoundRobin(t *testing.T) {
	for _, mode := range rapModes {
		cfg := defaultRAPConfig()
		cfg.mode = mode
		lb, _, now := rapTestLB(t, cfg, rapTestEPs[:3]...) // a1 b1 c1, eject_s 10
		src := rapTestSrc(7)
		*now = 100
		rapTestAsk(t, lb, src, false, a1)
		rapTestAsk(t, lb, src, true, b1) // a1 failed: its count is taken back
		if got := rapTestActive(lb, a1); got != 0 {
			t.Fatalf("%s: active[a1] = %d after its dial failed, want 0", mode, got)
		}
		rapTestAsk(t, lb, rapTestSrc(8), false, c1)
		*now = 110 // a1 still ejected: the round robin goes past it
		rapTestAsk(t, lb, rapTestSrc(9), false, b1)
		*now = 110.5
		rapTestAsk(t, lb, rapTestSrc(10), false, c1)
		rapTestAsk(t, lb, rapTestSrc(11), false, a1)
	}
}

func TestRAPRetryWindow(t *testing.T) {
	lb, _, now := rapTestLB(t, rapClassicConfig(), rapTestEPs[:3]...)
	src := rapTestSrc(7)
	rapTestAsk(t, lb, src, false, a1)
	*now = 20 // exactly RETRY_WINDOW_S later: still a retry
	rapTestAsk(t, lb, src, true, b1)
	if lb.services[rapTestSvc].book.ejections != 1 {
		t.Fatal("a retry 20 s after the answer ejected nothing")
	}
	// The entry is used once: asking again reports b1, the answer just given.
	rapTestAsk(t, lb, src, true, c1)
	if got := rapTestActive(lb, b1); got != 0 {
		t.Fatalf("active[b1] = %d, want 0 after the second retry", got)
	}
	// Older than the window: not a retry.
	*now = 40.5
	rapTestAsk(t, lb, src, true, a1) // a1, b1 were ejected until 30: the round robin is whole again
	if got := rapTestActive(lb, c1); got != 1 {
		t.Fatalf("active[c1] = %d, want 1: the late reset must not report it", got)
	}
	// A reset with no answer before is no retry either.
	rapTestAsk(t, lb, rapTestSrc(99), true, b1)
	if n := lb.services[rapTestSvc].book.ejections; n != 0 {
		t.Fatalf("%d ejections, want none", n)
	}
}

func TestRAPAllEjectedUsesAll(t *testing.T) {
	lb, _, _ := rapTestLB(t, rapClassicConfig(), rapTestEPs[:2]...)
	rapTestAsk(t, lb, rapTestSrc(1), false, a1)
	rapTestAsk(t, lb, rapTestSrc(1), true, b1) // a1 ejected
	rapTestAsk(t, lb, rapTestSrc(1), true, a1) // b1 too: U is every endpoint again
	rapTestAsk(t, lb, rapTestSrc(2), false, b1)
}

// In the classic mode a new ejection drops the plan, and a plan made while
// an endpoint is ejected ends with the earliest ejected_until.
func TestRAPClassicPlanFollowsU(t *testing.T) {
	lb, rb, now := rapTestLB(t, rapClassicConfig(), rapTestEPs...)
	rb.setSnapshot(rapTestSnapshot(0, nil, nil)) // node-a has capacity: local plan
	src := rapTestSrc(1)
	*now = 1
	rapTestAsk(t, lb, src, false, a1)
	rapTestAsk(t, lb, src, true, a2) // a1 ejected until 11: node-a's free endpoints are [a2]
	rapTestAsk(t, lb, rapTestSrc(2), false, a2)
	if p := lb.services[rapTestSvc].plan; p.validUntil != 11 {
		t.Fatalf("plan valid until %v, want 11 (a1's ejected_until)", p.validUntil)
	}
	*now = 11.5 // a1 back; node-a's cursor stands at 3
	rapTestAsk(t, lb, rapTestSrc(3), false, a2)
	rapTestAsk(t, lb, rapTestSrc(4), false, a1)
	// Both local pods ejected: forward to node-b, the best other node.
	rapTestAsk(t, lb, rapTestSrc(4), true, a2)
	rapTestAsk(t, lb, rapTestSrc(4), true, b1)
}

func TestRAPBookkeepingChurn(t *testing.T) {
	lb, _, now := rapTestLB(t, rapClassicConfig(), rapTestEPs[:3]...)
	rapTestAsk(t, lb, rapTestSrc(1), false, a1)
	rapTestAsk(t, lb, rapTestSrc(2), false, b1)
	rapTestAsk(t, lb, rapTestSrc(3), false, c1)
	rapTestAsk(t, lb, rapTestSrc(3), true, a1) // c1 ejected until 10
	// A new set without b1: a1's count and c1's ejection stay, b1's go, and so
	// does the last answer that pointed at b1.
	lb.OnEndpointsUpdate(rapTestEndpoints(rapTestEPs[:3]...), rapTestEndpoints(rapTestEPs[0], rapTestEPs[2], rapTestEPs[3]))
	if a, b := rapTestActive(lb, a1), rapTestActive(lb, b1); a != 2 || b != -1 {
		t.Fatalf("after churn active[a1] = %d (want 2), b1 %d (want not listed)", a, b)
	}
	rapTestAsk(t, lb, rapTestSrc(4), false, a1)
	rapTestAsk(t, lb, rapTestSrc(5), false, a2) // c1 still ejected
	// b1 back (OnEndpointsAdd always replaces, keeping what stays): a retry of
	// the connection that got b1 before is no retry any more.
	*now = 10.5
	lb.OnEndpointsAdd(rapTestEndpoints(rapTestEPs[:4]...))
	rapTestAsk(t, lb, rapTestSrc(2), true, a1)
	if n, a := lb.services[rapTestSvc].book.ejections, rapTestActive(lb, b1); n != 0 || a != 0 {
		t.Fatalf("after re-adding b1: %d ejections (want 0: c1's is over), active[b1] %d (want 0)", n, a)
	}
	// Emptied: nothing is kept.
	lb.OnEndpointsUpdate(rapTestEndpoints(rapTestEPs[:4]...), rapTestEndpoints())
	if b := lb.services[rapTestSvc].book; b.conns != nil || b.last != nil || b.ejections != 0 {
		t.Fatalf("an emptied service keeps books: %+v", b)
	}
}

// last[] holds only what a retry could use, within a constant factor.
func TestRAPLastIsBounded(t *testing.T) {
	lb, _, now := rapTestLB(t, rapClassicConfig(), rapTestEPs...)
	const perSecond = 50
	most := 0
	for s := 0; s < 300; s++ {
		*now = float64(s)
		for k := 0; k < perSecond; k++ {
			rapTestNext(t, lb) // same source: one entry
			lb.NextEndpoint(rapTestSvc, &net.TCPAddr{IP: net.IPv4(198, 51, byte(s), byte(k)), Port: 40000 + s}, false)
		}
		if n := len(lb.services[rapTestSvc].book.last); n > most {
			most = n
		}
	}
	// Live: 21 s of 50 new clients a second, and the one that repeats; swept at twice that.
	if limit := 2 * ((rapRetryWindowS+1)*perSecond + 1); float64(most) > limit {
		t.Fatalf("last[] grew to %d entries, want at most %v", most, limit)
	}
}

func TestRAPSrcKeyIsTheAddressString(t *testing.T) {
	addrs := []net.Addr{
		&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 80},
		&net.TCPAddr{IP: net.IP{10, 0, 0, 1}, Port: 80},
		&net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 80},
		&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 81},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"},
		&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 80},
		&net.TCPAddr{Port: 80},
		&net.UnixAddr{Name: "/run/x", Net: "unix"},
	}
	for _, x := range addrs {
		for _, y := range addrs {
			kx, okx := rapSrcKeyOf(x)
			ky, oky := rapSrcKeyOf(y)
			if !okx || !oky {
				t.Fatalf("no key for %v or %v", x, y)
			}
			if (kx == ky) != (x.String() == y.String()) {
				t.Errorf("%v and %v: same key %v, same string %v", x, y, kx == ky, x.String() == y.String())
			}
		}
	}
	if _, ok := rapSrcKeyOf(nil); ok {
		t.Error("a nil address has a key")
	}
	var nilTCP *net.TCPAddr
	if _, ok := rapSrcKeyOf(nilTCP); ok {
		t.Error("a nil *TCPAddr has a key")
	}
}

// Without a monitor RAP stays out: a reset is kube-proxy's, not a retry
// (upstream's TestStickyLoadBalanceWorksWithEndpointFails relies on it).
func TestRAPNoMonitorKeepsNoBooks(t *testing.T) {
	for _, k := range []string{"RAP_KUBECONFIG", "KUBERNETES_SERVICE_HOST"} {
		if os.Getenv(k) != "" {
			t.Skipf("%s is set: NewLoadBalancerRR would start a monitor", k)
		}
	}
	rapTestNoShuffle(t)
	lb := NewLoadBalancerRR()
	lb.OnEndpointsAdd(rapTestEndpoints(rapTestEPs[:3]...))
	rapTestAsk(t, lb, rapTestSrc(1), false, a1)
	rapTestAsk(t, lb, rapTestSrc(1), true, b1)
	rapTestAsk(t, lb, rapTestSrc(2), false, c1)
	rapTestAsk(t, lb, rapTestSrc(3), false, a1) // not ejected
	if b := lb.services[rapTestSvc].book; b.last != nil || b.ejections != 0 || b.conns[a1].active != 0 {
		t.Fatalf("books kept without a monitor: %+v", b)
	}
}

// TestRAPConnectionDoneConcurrent: connections handed out, retried and ended
// from many goroutines while snapshots are swapped (run with -race). Every
// decrement follows its own increment, so no count is ever clipped at 0 and
// all end at 0.
func TestRAPConnectionDoneConcurrent(t *testing.T) {
	lb, rb, _ := rapTestLB(t, defaultRAPConfig(), rapTestEPs...)
	stop := make(chan struct{})
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			rb.setSnapshot(rapIdleSnapshot(rb.now(), map[string]float64{"10.0.1.1": float64(i%3) * 0.45}, nil))
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				src := &net.TCPAddr{IP: net.IPv4(192, 0, 2, byte(g)), Port: i}
				ep, err := lb.NextEndpoint(rapTestSvc, src, false)
				if err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 { // the dial failed: kube-proxy asks again
					if ep, err = lb.NextEndpoint(rapTestSvc, src, true); err != nil {
						t.Error(err)
						return
					}
				}
				lb.ConnectionDone(rapTestSvc, ep)
			}
		}(g)
	}
	wg.Wait()
	close(stop)
	<-swapped
	for _, ep := range rapTestEPs {
		if got := rapTestActive(lb, ep.ip+":80"); got != 0 {
			t.Errorf("active[%s] = %d after every connection ended, want 0", ep.ip, got)
		}
	}
}
