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
