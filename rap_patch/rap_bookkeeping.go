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

// The connection bookkeeping of docs/algorithm.md "Connection bookkeeping
// (both modes)": per service port, the connections in flight to each
// endpoint, the endpoint last handed to each client address (so that
// kube-proxy's retry after a failed dial can be recognised), and which
// endpoints are ejected after such a failure; and the usable set U that both
// decisions read. It decides nothing itself (rap_decide.go, rap_adaptive.go)
// and holds no lock: every method runs under LoadBalancerRR's lock.

package userspace

import (
	"math"
	"net"

	"k8s.io/kubernetes/pkg/proxy"
)

// rapRetryWindowS is RETRY_WINDOW_S: kube-proxy's dial timeouts add up to
// 15 s, so a retry of the same connection comes within 20 s of the answer it
// retries.
const rapRetryWindowS = 20.0

// rapMinLastPrune: below this many entries last[] is never swept, so a quiet
// service costs no sweeps at all.
const rapMinLastPrune = 256

// rapConn is one endpoint's bookkeeping; endpoints listed twice share one.
type rapConn struct {
	active       int     // connections handed out and not yet done
	ejected      bool    // ejectedUntil is set and has not yet been seen to pass
	ejectedUntil float64 // ejected while now <= ejectedUntil
}

// rapSrcKey identifies a client address as srcAddr.String() does, without
// building the string: TCP and UDP addresses by IP (16-byte form, so IPv4
// and IPv4-in-IPv6 are one, as they print alike), port and zone; any other
// address by its string.
type rapSrcKey struct {
	ip    [16]byte
	port  int
	zone  string
	other string
}

type rapLast struct {
	endpoint string
	at       float64
}

type rapBook struct {
	conns map[string]*rapConn // by "ip:port"
	byPos []*rapConn          // aligned with balancerState.endpoints
	last  map[rapSrcKey]rapLast
	// pruneAt: the size of last at which expired entries are next swept;
	// twice the live size after a sweep, so sweeping is amortised O(1).
	pruneAt int
	// ejections counts the conns with ejected set; 0 lets U be every
	// endpoint without a look at any of them.
	ejections int
}

// rapSrcKeyOf: ok is false for a nil address (upstream's tests pass none),
// which then has no last[] entry.
func rapSrcKeyOf(addr net.Addr) (rapSrcKey, bool) {
	var ip net.IP
	var port int
	var zone string
	switch a := addr.(type) {
	case nil:
		return rapSrcKey{}, false
	case *net.TCPAddr:
		if a == nil {
			return rapSrcKey{}, false
		}
		ip, port, zone = a.IP, a.Port, a.Zone
	case *net.UDPAddr:
		if a == nil {
			return rapSrcKey{}, false
		}
		ip, port, zone = a.IP, a.Port, a.Zone
	default:
		return rapSrcKey{other: addr.String()}, true
	}
	ip16 := ip.To16()
	if ip16 == nil { // no IP, or a malformed one: only its string says who it is
		return rapSrcKey{other: addr.String()}, true
	}
	k := rapSrcKey{port: port, zone: zone}
	copy(k.ip[:], ip16)
	return k, true
}

// rebuild follows a new endpoint list: what is known of an address that
// stays is kept (its connections are still open), the rest is dropped.
func (b *rapBook) rebuild(endpoints []string) {
	if len(endpoints) == 0 {
		b.clear()
		return
	}
	conns := make(map[string]*rapConn, len(endpoints))
	b.byPos = make([]*rapConn, len(endpoints))
	b.ejections = 0
	for i, addr := range endpoints {
		c := conns[addr]
		if c == nil {
			c = b.conns[addr]
			if c == nil {
				c = &rapConn{}
			}
			conns[addr] = c
			if c.ejected {
				b.ejections++
			}
		}
		b.byPos[i] = c
	}
	b.conns = conns
	for src, l := range b.last {
		if conns[l.endpoint] == nil {
			delete(b.last, src)
		}
	}
}

// clear: an empty list or a reset service keeps nothing.
func (b *rapBook) clear() {
	*b = rapBook{}
}

// handed records that endpoint was returned to src at now: one more
// connection in flight, and the answer a retry of src would report.
func (b *rapBook) handed(src net.Addr, endpoint string, now float64) {
	if c := b.conns[endpoint]; c != nil {
		c.active++
	}
	key, ok := rapSrcKeyOf(src)
	if !ok {
		return
	}
	if b.last == nil {
		b.last = map[rapSrcKey]rapLast{}
	}
	if len(b.last) >= b.pruneAt {
		b.pruneLast(now)
	}
	b.last[key] = rapLast{endpoint: endpoint, at: now}
}

// pruneLast drops the entries no retry can use any more.
func (b *rapBook) pruneLast(now float64) {
	for src, l := range b.last {
		if !(now-l.at <= rapRetryWindowS) {
			delete(b.last, src)
		}
	}
	b.pruneAt = 2 * len(b.last)
	if b.pruneAt < rapMinLastPrune {
		b.pruneAt = rapMinLastPrune
	}
}

// retried handles a request with sessionAffinityReset: if src was answered
// within the retry window, that dial failed, so its endpoint loses the
// connection it was counted for and is ejected until now + ejectS. It
// reports whether an endpoint was ejected (which changes U).
func (b *rapBook) retried(src net.Addr, now, ejectS float64) bool {
	key, ok := rapSrcKeyOf(src)
	if !ok {
		return false
	}
	l, found := b.last[key]
	if !found {
		return false
	}
	delete(b.last, key)
	if !(now-l.at <= rapRetryWindowS) {
		return false
	}
	c := b.conns[l.endpoint]
	if c == nil {
		return false
	}
	if c.active > 0 {
		c.active--
	}
	if !c.ejected {
		b.ejections++
	}
	c.ejected = true
	c.ejectedUntil = now + ejectS
	return true
}

// done: a connection to endpoint ended; an endpoint no longer listed, or a
// count already 0 (the connection was counted before a reset), is left alone.
func (b *rapBook) done(endpoint string) {
	if c := b.conns[endpoint]; c != nil && c.active > 0 {
		c.active--
	}
}

// ejectedAt: whether endpoint i is ejected at now. An ejection seen to have
// passed is forgotten, since time does not go back.
func (b *rapBook) ejectedAt(i int, now float64) bool {
	c := b.byPos[i]
	if !c.ejected {
		return false
	}
	if now <= c.ejectedUntil {
		return true
	}
	c.ejected = false
	b.ejections--
	return false
}

// usable describes U at now: all is true when U is every endpoint (nothing
// ejected, or everything: a last resort beats a refusal); until is the
// earliest ejected_until among the ejected endpoints (+Inf when none), the
// last moment U stays as it is.
func (b *rapBook) usable(now float64) (all bool, until float64) {
	until = math.Inf(1)
	if b.ejections == 0 {
		return true, until
	}
	ejected := 0
	for i := range b.byPos {
		if b.ejectedAt(i, now) {
			ejected++
			if u := b.byPos[i].ejectedUntil; u < until {
				until = u
			}
		}
	}
	return ejected == len(b.byPos), until
}

// inU: whether endpoint i is usable at now, given usable's all.
func (b *rapBook) inU(i int, now float64, all bool) bool {
	return all || !b.ejectedAt(i, now)
}

// roundRobinUsable is kube-proxy's round robin over U: from index, the
// first endpoint of U (wrapping), after which index moves past it. With
// nothing ejected it is exactly roundRobin.
func (state *balancerState) roundRobinUsable(now float64) string {
	all, _ := state.book.usable(now)
	if all {
		return state.roundRobin()
	}
	n := len(state.endpoints)
	for k := 0; k < n; k++ {
		i := (state.index + k) % n
		if !state.book.ejectedAt(i, now) {
			state.index = (i + 1) % n
			return state.endpoints[i]
		}
	}
	return state.roundRobin() // not reached: usable said some endpoint is in U
}

// on: whether the balancer keeps books and decides (false: kube-proxy's
// round robin exactly).
func (rb *rapBalancer) on() bool { return rb != nil && rb.enabled }

// handed counts an endpoint NextEndpoint returns (an affinity hit or a new
// choice). Called with lb.lock held.
func (rb *rapBalancer) handed(state *balancerState, src net.Addr, endpoint string, now float64) {
	if rb.on() {
		state.book.handed(src, endpoint, now)
	}
}

// retried reports the dial failure a sessionAffinityReset request stands
// for; an ejection drops the plans, which were made for another U. Called
// with lb.lock held.
func (rb *rapBalancer) retried(state *balancerState, src net.Addr, now float64) {
	if rb.on() && state.book.retried(src, now, rb.cfg.ejectS) {
		state.invalidatePlan()
	}
}

// ConnectionDone is called by proxysocket.go when a proxied TCP connection to
// endpoint closes or a UDP client's session times out: one connection fewer
// in flight there.
func (lb *LoadBalancerRR) ConnectionDone(svcPort proxy.ServicePortName, endpoint string) {
	lb.lock.Lock()
	defer lb.lock.Unlock()
	if state, ok := lb.services[svcPort]; ok && state != nil {
		state.book.done(endpoint)
	}
}
