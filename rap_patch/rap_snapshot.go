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

// RAP's view of the cluster and its clock: the inputs a decision reads
// (rapUsage, rapRTT, rapSnapshot), the per-process balancer state that holds
// them (rapBalancer), and the atomic swap by which the monitor publishes a new
// view. It does not measure anything (rap_monitor.go does) nor decide
// (rap_decide.go).

package userspace

import (
	"sync/atomic"
	"time"
)

type rapUsage struct {
	cpu, mem float64 // fractions of a pod's limit (or request) / a node's allocatable
	at       float64 // when measured, seconds on the balancer's clock
}

type rapRTT struct {
	ms float64 // round-trip time from the local node
	at float64
}

// rapSnapshot is immutable once published: the monitor builds a new one and
// swaps it in, so a decision sees the old or the new one, never a mix.
type rapSnapshot struct {
	pods  map[string]rapUsage // by pod IP
	nodes map[string]rapUsage // by node name
	rtt   map[string]rapRTT   // by destination node
}

var emptyRAPSnapshot = &rapSnapshot{}

type rapBalancer struct {
	enabled   bool // false: bad configuration, plain round robin
	cfg       rapConfig
	localNode string
	clock     func() float64
	snap      atomic.Value // *rapSnapshot
}

func newRAPBalancer(cfg rapConfig, localNode string) *rapBalancer {
	start := time.Now()
	rb := &rapBalancer{
		enabled:   true,
		cfg:       cfg,
		localNode: localNode,
		// Monotonic seconds since start: kube-proxy's time.Since, as a float.
		clock: func() float64 { return time.Since(start).Seconds() },
	}
	rb.snap.Store(emptyRAPSnapshot)
	return rb
}

// processStart anchors the clock of a LoadBalancerRR built without RAP state.
var processStart = time.Now()

func (rb *rapBalancer) now() float64 {
	if rb == nil {
		return time.Since(processStart).Seconds()
	}
	return rb.clock()
}

func (rb *rapBalancer) snapshot() *rapSnapshot { return rb.snap.Load().(*rapSnapshot) }

// setSnapshot swaps in a new view of the cluster (the monitor, the tests).
// The decision path takes no lock the monitor holds: an atomic store is all
// the two share.
func (rb *rapBalancer) setSnapshot(s *rapSnapshot) {
	if s == nil {
		s = emptyRAPSnapshot
	}
	rb.snap.Store(s)
}
