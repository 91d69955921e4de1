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

// Tests of rap_snapshot.go: decisions stay valid while snapshots are swapped
// under them (run with -race).

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// TestRAPSnapshotSwapConcurrent: decisions while the monitor swaps snapshots
// (run with -race). Every answer must be one of the endpoints.
func TestRAPSnapshotSwapConcurrent(t *testing.T) {
	rapTestNoShuffle(t)
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

// TestRAPHotFlags: a pod or node is hot at its threshold, stays hot until it
// falls below the threshold less the hysteresis, and is not hot once it is
// no longer sampled; flags are worked out against the previous snapshot.
func TestRAPHotFlags(t *testing.T) {
	rb := newRAPBalancer(defaultRAPConfig(), "node-a") // 0.8 / 0.9, hysteresis 0.1
	swap := func(cpu, mem float64) *rapSnapshot {
		u := rapUsage{cpu: cpu, mem: mem}
		rb.setSnapshot(&rapSnapshot{pods: map[string]rapUsage{"p": u}, nodes: map[string]rapUsage{"n": u}})
		return rb.snapshot()
	}
	for i, tc := range []struct {
		cpu, mem float64
		hot      bool
	}{
		{0.79, 0.1, false}, {0.8, 0.1, true}, // the threshold itself is hot
		{0.71, 0.1, true}, {0.1, 0.85, true}, // cooling: above 0.7 CPU / 0.8 memory
		{0.1, 0.79, false}, // below memory's 0.9 - 0.1
		{0.75, 0.85, false}, {0.1, 0.9, true}, {1.5, 0.1, true},
	} {
		s := swap(tc.cpu, tc.mem)
		if s.podHot["p"] != tc.hot || s.nodeHot["n"] != tc.hot {
			t.Fatalf("swap %d (cpu %v, mem %v): pod hot %v, node hot %v, want %v", i, tc.cpu, tc.mem, s.podHot["p"], s.nodeHot["n"], tc.hot)
		}
	}
	rb.setSnapshot(&rapSnapshot{})
	rb.setSnapshot(&rapSnapshot{pods: map[string]rapUsage{"p": {cpu: 0.75}}})
	if rb.snapshot().podHot["p"] {
		t.Fatal("a pod missing from the snapshot between stayed hot")
	}
}

// TestRAPSameSnapshotSwappedAgain: swapping a snapshot that is already
// published does not write it under a reader (run with -race).
func TestRAPSameSnapshotSwappedAgain(t *testing.T) {
	lb, rb, _ := rapTestLB(t, defaultRAPConfig(), rapTestEPs...)
	snaps := []*rapSnapshot{rapTestSnapshot(0, nil, map[string]float64{"node-a": 0.9}), rapTestSnapshot(0, nil, nil)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2000; i++ {
			rb.setSnapshot(snaps[i%2])
		}
	}()
	for i := 0; i < 2000; i++ {
		rapTestNext(t, lb)
	}
	<-done
	if snaps[0].podHot != nil || snaps[0].nodeHot != nil {
		t.Fatal("setSnapshot wrote the caller's snapshot")
	}
}
