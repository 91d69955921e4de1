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

// RAP's classic decision (docs/algorithm.md steps 1-6): which endpoint a new
// connection gets when no affinity entry decides, and the cached plan that
// keeps NextEndpoint O(1) between changes; choose also hands the adaptive
// mode to rap_adaptive.go. It reads only the snapshot (rap_snapshot.go), the
// service's endpoints and which of them are usable (rap_bookkeeping.go); it
// takes no lock, does no I/O and holds no session-affinity logic (rap.go
// keeps kube-proxy's).

package userspace

import (
	"math"

	"k8s.io/klog/v2"
)

// rapScoreEpsilon: scores closer than this are ties (docs/algorithm.md step 4).
const rapScoreEpsilon = 1e-9

// rapPlan is the cached outcome of the decision: which group of endpoints a
// new connection goes to. It depends only on the endpoints, the snapshot,
// which inputs are still fresh and which endpoints are usable, so it is
// reused until one of those changes; that makes NextEndpoint O(1) and
// allocation-free in the steady state.
type rapPlan struct {
	valid      bool
	generation uint64
	snap       *rapSnapshot
	computedAt float64
	validUntil float64
	roundRobin bool     // kube-proxy's round robin over all endpoints
	group      string   // the chosen node (for logs)
	candidates []string // the group's free endpoints, in list order
	cursor     *int
	reason     string
}

// invalidatePlan: the endpoint list, a node's name or the usable set changed,
// so no plan (or adaptive terms) made for the old one may be used again.
func (state *balancerState) invalidatePlan() {
	state.generation++
	state.plan = rapPlan{}
}

// choose picks the endpoint for a new connection that no affinity entry
// decides. Called with lb.lock held; takes no other lock.
func (rb *rapBalancer) choose(state *balancerState, now float64) string {
	if !rb.on() {
		return state.roundRobin()
	}
	if rb.cfg.mode == rapModeAdaptive {
		return rb.chooseAdaptive(state, now)
	}
	snap := rb.snapshot()
	p := &state.plan
	if !p.valid || p.generation != state.generation || p.snap != snap ||
		!(p.computedAt <= now && now <= p.validUntil) {
		rb.decide(state, snap, now)
	}
	if p.roundRobin {
		return state.roundRobinUsable(now)
	}
	c := *p.cursor
	*p.cursor = c + 1
	return p.candidates[c%len(p.candidates)]
}

// rapView holds the inputs of one decision: only those still fresh at now.
// validUntil is the earliest moment a consulted fresh input goes stale (or
// U changes), as at + stale_after, the classic plan's bound; oldestAt is the
// earliest at consulted, for the adaptive terms' exact bound (rapLastFresh).
type rapView struct {
	cfg        *rapConfig
	snap       *rapSnapshot
	now        float64
	validUntil float64
	oldestAt   float64
}

func newRAPView(cfg *rapConfig, snap *rapSnapshot, now, usableUntil float64) rapView {
	return rapView{cfg: cfg, snap: snap, now: now, validUntil: usableUntil, oldestAt: math.Inf(1)}
}

func (v *rapView) fresh(at float64) bool {
	if v.now-at > v.cfg.staleAfterS {
		return false
	}
	if until := at + v.cfg.staleAfterS; until < v.validUntil {
		v.validUntil = until
	}
	if at < v.oldestAt {
		v.oldestAt = at
	}
	return true
}

func (v *rapView) pod(ip string) (rapUsage, bool) {
	u, ok := v.snap.pods[ip]
	return u, ok && v.fresh(u.at)
}

func (v *rapView) node(name string) (rapUsage, bool) {
	u, ok := v.snap.nodes[name]
	return u, ok && v.fresh(u.at)
}

func (v *rapView) rtt(name string) (float64, bool) {
	r, ok := v.snap.rtt[name]
	return r.ms, ok && v.fresh(r.at)
}

// overloaded: unknown is not overloaded (RAP only steers away from load it sees).
func (v *rapView) overloaded(u rapUsage, ok bool) bool {
	return ok && (u.cpu >= v.cfg.cpuThreshold || u.mem >= v.cfg.memThreshold)
}

// rttMax spans every node measured from local, not only the candidates, so
// that a node's network term does not depend on who else has capacity.
func (v *rapView) rttMax(local string) float64 {
	longest := 0.0
	for n := range v.snap.rtt {
		if n == local {
			continue
		}
		if ms, ok := v.rtt(n); ok && ms > longest {
			longest = ms
		}
	}
	return longest
}

func (state *balancerState) cursorFor(node string) *int {
	if state.cursors == nil {
		state.cursors = map[string]*int{}
	}
	c := state.cursors[node]
	if c == nil {
		c = new(int)
		state.cursors[node] = c
	}
	return c
}

// freeByNode groups the usable endpoints whose pods are not overloaded by
// node, in list order; order lists the nodes by their first free endpoint.
// anyData says whether any usable endpoint had a fresh pod or node input
// (step 1). allUsable is rapBook.usable's all.
func freeByNode(state *balancerState, view *rapView, allUsable bool, local string) (free map[string][]string, order []string, anyData bool) {
	free = map[string][]string{}
	for i, addr := range state.endpoints {
		if !state.book.inU(i, view.now, allUsable) {
			continue
		}
		pu, pok := view.pod(state.ips[i])
		_, nok := view.node(state.nodes[i])
		anyData = anyData || pok || nok
		if !view.overloaded(pu, pok) && !view.snap.unwatched(state.nodes[i], local) {
			n := state.nodes[i]
			if _, seen := free[n]; !seen {
				order = append(order, n)
			}
			free[n] = append(free[n], addr)
		}
	}
	return free, order, anyData
}

// decide computes the plan of docs/algorithm.md steps 1-6 over U into
// state.plan; it holds until U could change (the earliest ejected_until).
func (rb *rapBalancer) decide(state *balancerState, snap *rapSnapshot, now float64) {
	allUsable, usableUntil := state.book.usable(now)
	view := newRAPView(&rb.cfg, snap, now, usableUntil)
	free, order, anyData := freeByNode(state, &view, allUsable, rb.localNode)
	set := func(roundRobin bool, group, reason string) {
		state.plan = rapPlan{
			valid: true, generation: state.generation, snap: snap, computedAt: now,
			validUntil: view.validUntil, roundRobin: roundRobin, group: group, reason: reason,
		}
		if !roundRobin {
			state.plan.candidates = free[group]
			state.plan.cursor = state.cursorFor(group)
		}
		if v := klog.V(4); v.Enabled() {
			v.InfoS("RAP plan", "reason", reason, "candidates", state.plan.candidates)
		}
	}
	if !anyData {
		set(true, "", "blind: no fresh resource data for any endpoint; round robin")
		return
	}
	local := rb.localNode
	localFree := free[local]
	lu, lok := view.node(local)
	if len(localFree) > 0 && !view.overloaded(lu, lok) {
		set(false, local, "local: "+local+" has capacity")
		return
	}
	if best, ok := rb.bestRemote(&view, order); ok {
		set(false, best, "forward: "+best+" scores best from "+local)
		return
	}
	if len(localFree) > 0 {
		set(false, local, "local: "+local+" overloaded but no other node has capacity")
		return
	}
	set(true, "", "all endpoints overloaded; round robin over all")
}

// remoteCandidates: the nodes other than local, in order, that have free
// endpoints and are not overloaded themselves.
func (rb *rapBalancer) remoteCandidates(view *rapView, order []string) []string {
	var remotes []string
	for _, n := range order {
		if n == rb.localNode {
			continue
		}
		if u, ok := view.node(n); view.overloaded(u, ok) {
			continue
		}
		remotes = append(remotes, n)
	}
	return remotes
}

// bestRemote is step 4: the best-scoring other node with free endpoints.
func (rb *rapBalancer) bestRemote(view *rapView, order []string) (string, bool) {
	remotes := rb.remoteCandidates(view, order)
	if len(remotes) == 0 {
		return "", false
	}
	rttMax := view.rttMax(rb.localNode)
	type ranked struct {
		score, rtt float64
		name       string
	}
	rs := make([]ranked, 0, len(remotes))
	top := math.Inf(-1)
	for _, n := range remotes {
		ms, measured := view.rtt(n)
		eff := rttMax
		if measured {
			eff = ms
		}
		s := rb.score(view, n, ms, measured, rttMax)
		if s > top {
			top = s
		}
		rs = append(rs, ranked{s, eff, n})
	}
	best := -1
	for i, r := range rs {
		if !(top-r.score <= rapScoreEpsilon) {
			continue
		}
		if best < 0 || r.rtt < rs[best].rtt || (r.rtt == rs[best].rtt && r.name < rs[best].name) {
			best = i
		}
	}
	if best < 0 { // only with NaN scores; cannot happen with a valid configuration
		return "", false
	}
	return rs[best].name, true
}

// score is w_cpu·(1−cpu) + w_mem·(1−mem) + w_net·(1 − rtt/rtt_max), evaluated
// left to right as the Python reference does. The float64() conversions round
// every product, so the compiler may not fuse them into multiply-adds.
func (rb *rapBalancer) score(view *rapView, name string, ms float64, measured bool, rttMax float64) float64 {
	cpuFree, memFree := 0.0, 0.0 // an unmeasured node scores as fully used
	if u, ok := view.node(name); ok {
		cpuFree = 1.0 - u.cpu
		memFree = 1.0 - u.mem
	}
	netFree := 0.0 // an unmeasured RTT scores as rtt_max
	if measured {
		if rttMax > 0 {
			netFree = 1.0 - ms/rttMax
		} else {
			netFree = 1.0 // every measured RTT is 0
		}
	}
	c := rb.cfg
	s := float64(c.wCPU * cpuFree)
	s = s + float64(c.wMem*memFree)
	s = s + float64(c.wNet*netFree)
	return s
}
