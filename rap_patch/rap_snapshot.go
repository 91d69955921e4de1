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

	// The adaptive mode's overload flags with hysteresis (docs/algorithm.md
	// "Hysteresis"), set by setSnapshot from the previous snapshot's; only
	// hot items are listed. Whoever builds a snapshot leaves them nil.
	podHot, nodeHot map[string]bool

	// watched: the nodes whose samples the monitor reads (a bounded view,
	// docs/algorithm.md "Watched nodes"); nil means every node's. The local
	// node is always watched.
	watched map[string]bool
}

// unwatched: an endpoint on node lies outside the monitor's view, so its lack
// of samples says nothing about its load and the decision treats it as
// overloaded (a last resort), as the Python reference's Snapshot.unwatched.
func (s *rapSnapshot) unwatched(node, local string) bool {
	return s.watched != nil && !(node != "" && (node == local || s.watched[node]))
}

var emptyRAPSnapshot = &rapSnapshot{}

type rapBalancer struct {
	enabled   bool // false: bad configuration, plain round robin
	cfg       rapConfig
	localNode string
	clock     func() float64
	snap      atomic.Value // *rapSnapshot
	// serviceNodes: per Service port, the nodes hosting its endpoints (set
	// by newLoadBalancer); the aggregated monitor draws its bounded view from
	// them and probes them first.
	serviceNodes func() [][]string
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

// setSnapshot swaps in a new view of the cluster (the monitor, the tests),
// with its hot flags worked out against the one it replaces. The decision
// path takes no lock the monitor holds: an atomic store is all the two share.
// Only one goroutine (the monitor) may swap, or the "previous" snapshot of
// the hysteresis would be a race between swappers.
func (rb *rapBalancer) setSnapshot(s *rapSnapshot) {
	if s == nil {
		s = emptyRAPSnapshot
	}
	prev := rb.snapshot()
	// A copy: s may already be published (a test swapping the same snapshot
	// in twice), and a published snapshot is never written.
	next := *s
	next.podHot = rb.hotFlags(s.pods, prev.podHot)
	next.nodeHot = rb.hotFlags(s.nodes, prev.nodeHot)
	rb.snap.Store(&next)
}

// hotFlags: an item is hot when its use reaches the threshold, or, if it was
// hot before, the threshold less the hysteresis; an item not sampled is not
// hot. The thresholds are subtracted as the spec writes them, so Go and the
// Python reference round alike.
func (rb *rapBalancer) hotFlags(usage map[string]rapUsage, wasHot map[string]bool) map[string]bool {
	var hot map[string]bool
	for name, u := range usage {
		d := 0.0
		if wasHot[name] {
			d = rb.cfg.hysteresis
		}
		if u.cpu >= rb.cfg.cpuThreshold-d || u.mem >= rb.cfg.memThreshold-d {
			if hot == nil {
				hot = map[string]bool{}
			}
			hot[name] = true
		}
	}
	return hot
}
