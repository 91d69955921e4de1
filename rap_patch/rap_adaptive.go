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

// RAP's adaptive decision (docs/algorithm.md "The adaptive decision"): per
// new connection, the usable endpoint of lowest cost
// (active + 1) / headroom + rtt / rtt_per_conn_ms. What does not change from
// one connection to the next (each endpoint's headroom, RTT and overload, and
// whether the decision is blind) is cached in rapTerms like the classic plan,
// so a decision is two passes over the endpoints and allocates nothing. Like
// rap_decide.go it takes no lock and does no I/O.

package userspace

import (
	"math"

	"k8s.io/klog/v2"
)

// rapHeadroomFloor is HEADROOM_FLOOR: a pod at or past its threshold still
// costs a finite amount, so that when everything is busy the least busy wins.
const rapHeadroomFloor = 0.05

// rapTerm is what the adaptive cost needs of one endpoint, apart from its
// connections in flight.
type rapTerm struct {
	usable    bool    // in U
	hot       bool    // overloaded: its pod's or node's input is fresh and hot
	candidate bool    // in U and not overloaded (or nothing in U is free)
	headroom  float64 // max(HEADROOM_FLOOR, min(headroom_pod, headroom_node))
	rtt       float64 // 0 on the local node, else the fresh RTT or rtt_max
	netCost   float64 // rtt / rtt_per_conn_ms
	cost      float64 // scratch: this decision's cost
}

// rapTerms caches the terms for one generation of the endpoints (which
// includes U), one snapshot and the span in which every input read stays as
// fresh or stale as it was. The span is exact (rapLastFresh), so reusing the
// terms never answers otherwise than working them out anew would.
type rapTerms struct {
	valid      bool
	generation uint64
	snap       *rapSnapshot
	computedAt float64
	validUntil float64
	blind      bool      // no endpoint of U has a fresh pod or node input
	terms      []rapTerm // aligned with endpoints
}

func (t *rapTerms) holds(generation uint64, snap *rapSnapshot, now float64) bool {
	return t.valid && t.generation == generation && t.snap == snap &&
		t.computedAt <= now && now <= t.validUntil
}

// rapLastFresh is the last instant T at which now - at <= staleAfter still
// holds for now = T, in float64. at + staleAfter can be an ulp off it either
// way; since the subtraction is monotone in T, stepping from there finds it.
// T grows with at, so the oldest input read bounds them all.
func rapLastFresh(at, staleAfter float64) float64 {
	t := at + staleAfter
	if math.IsInf(t, 0) || math.IsNaN(t) {
		return t
	}
	for t-at > staleAfter {
		t = math.Nextafter(t, math.Inf(-1))
	}
	for {
		next := math.Nextafter(t, math.Inf(1))
		if next-at > staleAfter {
			return t
		}
		t = next
	}
}

// chooseAdaptive picks the endpoint for a new connection in mode adaptive.
// Called with lb.lock held.
func (rb *rapBalancer) chooseAdaptive(state *balancerState, now float64) string {
	snap := rb.snapshot()
	t := &state.terms
	if !t.holds(state.generation, snap, now) {
		rb.computeTerms(state, snap, now)
	}
	if t.blind {
		return state.roundRobinUsable(now)
	}
	i := state.cheapest()
	if i < 0 { // only with NaN costs, from inputs no monitor produces
		return state.roundRobinUsable(now)
	}
	state.rr = (i + 1) % len(state.endpoints)
	return state.endpoints[i]
}

// cheapest: the candidate of lowest cost; costs within rapScoreEpsilon of the
// lowest tie, and ties go to the lower rtt, then to the first position at or
// after the cursor rr (wrapping).
func (state *balancerState) cheapest() int {
	terms := state.terms.terms
	lowest := math.Inf(1)
	for i := range terms {
		e := &terms[i]
		if !e.candidate {
			continue
		}
		// As the spec writes it: the division, the second division (cached
		// in netCost), then one addition; float64() keeps each rounded.
		e.cost = float64(float64(state.book.byPos[i].active+1)/e.headroom) + e.netCost
		if e.cost < lowest {
			lowest = e.cost
		}
	}
	best := -1
	for k, i := 0, state.rr; k < len(terms); k, i = k+1, i+1 {
		if i == len(terms) {
			i = 0
		}
		e := &terms[i]
		if !e.candidate || !(e.cost-lowest <= rapScoreEpsilon) {
			continue
		}
		// Strictly lower only: of equal rtts the one met first, nearest rr, stays.
		if best < 0 || e.rtt < terms[best].rtt {
			best = i
		}
	}
	return best
}

// computeTerms works out every endpoint's terms over U at now into
// state.terms, reusing its slice.
func (rb *rapBalancer) computeTerms(state *balancerState, snap *rapSnapshot, now float64) {
	allUsable, usableUntil := state.book.usable(now)
	view := newRAPView(&rb.cfg, snap, now, math.Inf(1))
	rttMax := view.rttMax(rb.localNode)
	n := len(state.endpoints)
	t := &state.terms
	if cap(t.terms) < n {
		t.terms = make([]rapTerm, n)
	}
	t.terms = t.terms[:n]
	anyData, anyFree := false, false
	for i := range state.endpoints {
		t.terms[i] = rapTerm{}
		if !state.book.inU(i, now, allUsable) {
			continue
		}
		e, hasData := rb.termOf(&view, snap, state.ips[i], state.nodes[i], rttMax)
		t.terms[i] = e
		anyData = anyData || hasData
		anyFree = anyFree || !e.hot
	}
	for i := range t.terms {
		e := &t.terms[i]
		e.candidate = e.usable && (!e.hot || !anyFree)
	}
	validUntil := usableUntil
	if !math.IsInf(view.oldestAt, 1) {
		validUntil = math.Min(validUntil, rapLastFresh(view.oldestAt, rb.cfg.staleAfterS))
	}
	*t = rapTerms{valid: true, generation: state.generation, snap: snap, computedAt: now,
		validUntil: validUntil, blind: !anyData, terms: t.terms}
	if v := klog.V(4); v.Enabled() {
		v.InfoS("RAP adaptive terms", "blind", t.blind, "rttMax", rttMax, "validUntil", t.validUntil)
	}
}

// termOf is one usable endpoint's terms; hasData says whether its pod or
// node had a fresh input.
func (rb *rapBalancer) termOf(view *rapView, snap *rapSnapshot, ip, node string, rttMax float64) (e rapTerm, hasData bool) {
	hot := false
	headroom := 1.0
	if pu, ok := view.pod(ip); ok {
		hasData = true
		hot = snap.podHot[ip]
		headroom = rb.headroom(pu)
	}
	if node != "" { // a selectorless endpoint has no node, so no node input
		if nu, ok := view.node(node); ok {
			hasData = true
			hot = hot || snap.nodeHot[node]
			if h := rb.headroom(nu); h < headroom {
				headroom = h
			}
		}
	}
	hot = hot || snap.unwatched(node, rb.localNode)
	if !(headroom > rapHeadroomFloor) {
		headroom = rapHeadroomFloor
	}
	rtt := rttMax // no node name, or no fresh RTT to its node
	if node != "" && node == rb.localNode {
		rtt = 0
	} else if node != "" {
		if ms, ok := view.rtt(node); ok {
			rtt = ms
		}
	}
	return rapTerm{usable: true, hot: hot, headroom: headroom, rtt: rtt,
		netCost: float64(rtt / rb.cfg.rttPerConnMS)}, hasData
}

// headroom is min(1 - cpu/cpu_threshold, 1 - mem/mem_threshold), the first
// unless the second is strictly smaller (Python's min).
func (rb *rapBalancer) headroom(u rapUsage) float64 {
	cpu := 1.0 - float64(u.cpu/rb.cfg.cpuThreshold)
	mem := 1.0 - float64(u.mem/rb.cfg.memThreshold)
	if mem < cpu {
		return mem
	}
	return cpu
}
