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

// This file replaces pkg/proxy/userspace/roundrobin.go of Kubernetes v1.21.14
// with RAP, the Resource Adaptive Proxy (Nguyen, Phan, Kim, Sensors
// 22(8):2869, 2022). It holds what upstream's file holds, in upstream's
// order (with the few helpers RAP needs beside the code that uses them), so
// the two read side by side: LoadBalancerRR and its
// balancerState, kube-proxy's ClientIP session affinity, NextEndpoint, the
// EndpointsHandler methods and CleanupStaleStickySessions, under every name
// the rest of the package, kube-proxy and upstream's unit tests use. Where
// upstream takes endpoints[index], NextEndpoint asks RAP's decision
// (docs/algorithm.md), which the Python reference (rap/policies/rap.py) keeps
// too; the conformance vectors (tests/vectors) check that both agree.
//
// It is not the whole patch: the build adds the other non-test files of
// rap_patch/ to the same package. rap_config.go reads and checks the RAP_*
// environment variables, rap_snapshot.go holds the view of the cluster and
// the clock, rap_bookkeeping.go counts connections and ejects endpoints whose
// dial failed, rap_decide.go makes the classic decision and rap_adaptive.go
// the adaptive one, and rap_monitor.go measures (the only file that talks to
// the API server). This file starts the monitor but holds none of its code.
//
// Without a monitor (upstream's unit tests, a node with no configuration) no
// resource data ever arrives, RAP keeps no books, and the balancer behaves
// exactly as kube-proxy's round robin, retries included.

package userspace

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"reflect"
	"sort"
	"strconv"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/proxy"
)

var (
	ErrMissingServiceEntry = errors.New("missing service entry")
	ErrMissingEndpoints    = errors.New("missing endpoints")
)

// shuffleEndpoints is kube-proxy's shuffle of a new endpoint list. The
// conformance harness turns it off so that a vector's list order is the
// round-robin order.
var shuffleEndpoints = true

type affinityState struct {
	clientIP string
	endpoint string
	lastUsed float64 // seconds on the balancer's clock
}

type affinityPolicy struct {
	affinityType v1.ServiceAffinity
	affinityMap  map[string]*affinityState // map client IP -> affinity info
	ttlSeconds   int
}

// LoadBalancerRR is kube-proxy's round-robin load balancer with RAP's
// resource-adaptive choice of endpoint for new connections.
type LoadBalancerRR struct {
	lock     sync.RWMutex
	services map[proxy.ServicePortName]*balancerState
	rap      *rapBalancer
}

// Ensure this implements LoadBalancer.
var _ LoadBalancer = &LoadBalancerRR{}

type balancerState struct {
	endpoints []string // a list of "ip:port" style strings
	index     int      // current index into endpoints (kube-proxy's round robin)
	affinity  affinityPolicy

	// RAP: aligned with endpoints.
	ips   []string // pod IP of endpoints[i]
	nodes []string // node name of endpoints[i]
	// generation changes whenever endpoints or a node name changes; a plan
	// made for another generation is dropped.
	generation uint64
	// cursors: one counter per node, reset when the endpoint set changes.
	cursors map[string]*int
	plan    rapPlan
	// rr: the adaptive mode's cursor, reset with cursors.
	rr    int
	terms rapTerms // the adaptive mode's cached per-endpoint terms
	book  rapBook  // connections in flight, last answers, ejections
}

func newAffinityPolicy(affinityType v1.ServiceAffinity, ttlSeconds int) *affinityPolicy {
	return &affinityPolicy{
		affinityType: affinityType,
		affinityMap:  make(map[string]*affinityState),
		ttlSeconds:   ttlSeconds,
	}
}

// NewLoadBalancerRR returns a new LoadBalancerRR. RAP's configuration comes
// from the environment (rap_config.go); the metrics monitor is started only
// when one is configured.
func NewLoadBalancerRR() *LoadBalancerRR {
	rb := newRAPFromEnv(os.Getenv)
	if !monitorWanted(os.Getenv) {
		// No data will ever come, so RAP stays out altogether: upstream's tests
		// retry with sessionAffinityReset without any dial failing and expect
		// plain round robin, not an ejection.
		klog.V(2).InfoS("RAP: no monitor configured (RAP_KUBECONFIG, or running in a cluster); balancing as kube-proxy's round robin")
		rb.enabled = false
	}
	lb := newLoadBalancer(rb)
	startRAPMonitorIfWanted(context.Background(), rb, os.Getenv)
	return lb
}

func newLoadBalancer(rb *rapBalancer) *LoadBalancerRR {
	lb := &LoadBalancerRR{
		services: map[proxy.ServicePortName]*balancerState{},
		rap:      rb,
	}
	if rb != nil {
		rb.serviceNodes = lb.serviceNodes
	}
	return lb
}

// serviceNodes: per Service port this proxy carries, the nodes hosting its
// endpoints (read by the aggregated monitor once per period).
func (lb *LoadBalancerRR) serviceNodes() [][]string {
	lb.lock.RLock()
	defer lb.lock.RUnlock()
	out := make([][]string, 0, len(lb.services))
	for _, state := range lb.services {
		out = append(out, append([]string(nil), state.nodes...))
	}
	return out
}

func (lb *LoadBalancerRR) NewService(svcPort proxy.ServicePortName, affinityType v1.ServiceAffinity, ttlSeconds int) error {
	klog.V(4).Infof("LoadBalancerRR NewService %q", svcPort)
	lb.lock.Lock()
	defer lb.lock.Unlock()
	lb.newServiceInternal(svcPort, affinityType, ttlSeconds)
	return nil
}

// This assumes that lb.lock is already held.
func (lb *LoadBalancerRR) newServiceInternal(svcPort proxy.ServicePortName, affinityType v1.ServiceAffinity, ttlSeconds int) *balancerState {
	if ttlSeconds == 0 {
		// kube-proxy's default of 3 hours when none is given.
		ttlSeconds = int(v1.DefaultClientIPServiceAffinitySeconds)
	}
	state, exists := lb.services[svcPort]
	if !exists {
		state = &balancerState{affinity: *newAffinityPolicy(affinityType, ttlSeconds)}
		lb.services[svcPort] = state
		klog.V(4).Infof("LoadBalancerRR service %q did not exist, created", svcPort)
	} else if affinityType != "" {
		state.affinity.affinityType = affinityType
	}
	return state
}

func (lb *LoadBalancerRR) DeleteService(svcPort proxy.ServicePortName) {
	klog.V(4).Infof("LoadBalancerRR DeleteService %q", svcPort)
	lb.lock.Lock()
	defer lb.lock.Unlock()
	delete(lb.services, svcPort)
}

// isSessionAffinity: true if this service uses some form of session affinity.
func isSessionAffinity(affinity *affinityPolicy) bool {
	return affinity.affinityType != "" && affinity.affinityType != v1.ServiceAffinityNone
}

// ServiceHasEndpoints checks whether a service entry has endpoints.
func (lb *LoadBalancerRR) ServiceHasEndpoints(svcPort proxy.ServicePortName) bool {
	lb.lock.RLock()
	defer lb.lock.RUnlock()
	state, exists := lb.services[svcPort]
	return exists && state != nil && len(state.endpoints) > 0
}

// NextEndpoint returns the endpoint for a new connection: the client's live
// session-affinity entry if any, else RAP's choice (docs/algorithm.md).
func (lb *LoadBalancerRR) NextEndpoint(svcPort proxy.ServicePortName, srcAddr net.Addr, sessionAffinityReset bool) (string, error) {
	lb.lock.Lock()
	defer lb.lock.Unlock()

	state, exists := lb.services[svcPort]
	if !exists || state == nil {
		return "", ErrMissingServiceEntry
	}
	if len(state.endpoints) == 0 {
		return "", ErrMissingEndpoints
	}
	if v := klog.V(4); v.Enabled() {
		v.Infof("NextEndpoint for service %q, srcAddr=%v: endpoints: %+v", svcPort, srcAddr, state.endpoints)
	}
	now := lb.rap.now()

	sessionAffinityEnabled := isSessionAffinity(&state.affinity)
	var ipaddr string
	if sessionAffinityEnabled {
		var err error
		ipaddr, _, err = net.SplitHostPort(srcAddr.String())
		if err != nil {
			return "", fmt.Errorf("malformed source address %q: %v", srcAddr.String(), err)
		}
		if !sessionAffinityReset {
			sticky, ok := state.affinity.affinityMap[ipaddr]
			// kube-proxy's expiry: whole seconds since last use, truncated.
			if ok && int(now-sticky.lastUsed) < state.affinity.ttlSeconds {
				sticky.lastUsed = now
				if v := klog.V(4); v.Enabled() {
					v.Infof("NextEndpoint for service %q from IP %s with sessionAffinity %#v: %s", svcPort, ipaddr, sticky, sticky.endpoint)
				}
				lb.rap.handed(state, srcAddr, sticky.endpoint, now)
				return sticky.endpoint, nil
			}
		}
	}

	if sessionAffinityReset {
		// kube-proxy asks again this way only after a failed dial.
		lb.rap.retried(state, srcAddr, now)
	}
	endpoint := lb.rap.choose(state, now)
	lb.rap.handed(state, srcAddr, endpoint, now)

	if sessionAffinityEnabled {
		sticky := state.affinity.affinityMap[ipaddr]
		if sticky == nil {
			sticky = new(affinityState)
			state.affinity.affinityMap[ipaddr] = sticky
		}
		sticky.lastUsed = now
		sticky.endpoint = endpoint
		sticky.clientIP = ipaddr
		if v := klog.V(4); v.Enabled() {
			v.Infof("Updated affinity key %s: %#v", ipaddr, sticky)
		}
	}
	return endpoint, nil
}

// roundRobin is kube-proxy's choice: endpoints[index], then advance index.
func (state *balancerState) roundRobin() string {
	endpoint := state.endpoints[state.index]
	state.index = (state.index + 1) % len(state.endpoints)
	return endpoint
}

// Remove any session affinity records associated to a particular endpoint (for example when a pod goes down).
func removeSessionAffinityByEndpoint(state *balancerState, svcPort proxy.ServicePortName, endpoint string) {
	for ip, sticky := range state.affinity.affinityMap {
		if sticky.endpoint == endpoint {
			klog.V(4).Infof("Removing client: %s from affinityMap for service %q", sticky.endpoint, svcPort)
			delete(state.affinity.affinityMap, ip)
		}
	}
}

// removeStaleAffinity drops affinity records that point at endpoints absent
// from newEndpoints. This assumes the lb.lock is held.
func (lb *LoadBalancerRR) removeStaleAffinity(svcPort proxy.ServicePortName, newEndpoints []rapEndpoint) {
	state, exists := lb.services[svcPort]
	if !exists {
		return
	}
	keep := sets.NewString()
	for _, ep := range newEndpoints {
		keep.Insert(ep.addr)
	}
	for _, existing := range state.endpoints {
		if !keep.Has(existing) {
			klog.V(2).Infof("Delete endpoint %s for service %q", existing, svcPort)
			removeSessionAffinityByEndpoint(state, svcPort, existing)
		}
	}
}

// rapEndpoint is one endpoint of a service port, with the node it runs on.
type rapEndpoint struct {
	addr string // "ip:port"
	ip   string
	node string
}

// buildPortsToRAPEndpoints is kube-proxy's BuildPortsToEndpointsMap (same
// order, same validity rule) keeping each address's node name.
func buildPortsToRAPEndpoints(endpoints *v1.Endpoints) map[string][]rapEndpoint {
	out := map[string][]rapEndpoint{}
	for i := range endpoints.Subsets {
		ss := &endpoints.Subsets[i]
		for j := range ss.Ports {
			port := &ss.Ports[j]
			for k := range ss.Addresses {
				addr := &ss.Addresses[k]
				if addr.IP == "" || port.Port <= 0 {
					continue
				}
				node := ""
				if addr.NodeName != nil {
					node = *addr.NodeName
				}
				out[port.Name] = append(out[port.Name], rapEndpoint{
					addr: net.JoinHostPort(addr.IP, strconv.Itoa(int(port.Port))),
					ip:   addr.IP,
					node: node,
				})
			}
		}
	}
	return out
}

// setEndpoints replaces the endpoint list: shuffled (unless disabled), the
// round-robin index and RAP's cursors reset, any plan dropped, the books
// kept for the addresses that stay.
func (state *balancerState) setEndpoints(eps []rapEndpoint) {
	list := make([]rapEndpoint, len(eps))
	copy(list, eps)
	if shuffleEndpoints {
		rand.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
	}
	var addrs []string
	if eps != nil {
		addrs = make([]string, len(list))
	}
	state.ips = make([]string, len(list))
	state.nodes = make([]string, len(list))
	for i, ep := range list {
		addrs[i] = ep.addr
		state.ips[i] = ep.ip
		state.nodes[i] = ep.node
	}
	state.endpoints = addrs
	state.index = 0
	state.cursors = nil
	state.rr = 0
	state.book.rebuild(addrs)
	state.invalidatePlan()
}

// refreshNodes keeps order, index and cursors (the set is unchanged) but takes
// the nodes' names from the new list; a changed name drops the plan.
func (state *balancerState) refreshNodes(eps []rapEndpoint) {
	byAddr := make(map[string]rapEndpoint, len(eps))
	for _, ep := range eps {
		byAddr[ep.addr] = ep
	}
	changed := false
	for i, addr := range state.endpoints {
		ep, ok := byAddr[addr]
		if !ok {
			continue
		}
		if i < len(state.nodes) && state.nodes[i] != ep.node {
			state.nodes[i] = ep.node
			changed = true
		}
	}
	if changed {
		state.invalidatePlan()
	}
}

// servicePort names one port of the service that endpoints belong to.
func servicePort(endpoints *v1.Endpoints, port string) proxy.ServicePortName {
	return proxy.ServicePortName{NamespacedName: types.NamespacedName{Namespace: endpoints.Namespace, Name: endpoints.Name}, Port: port}
}

func (lb *LoadBalancerRR) OnEndpointsAdd(endpoints *v1.Endpoints) {
	portsToEndpoints := buildPortsToRAPEndpoints(endpoints)

	lb.lock.Lock()
	defer lb.lock.Unlock()

	for portname, newEndpoints := range portsToEndpoints {
		svcPort := servicePort(endpoints, portname)
		state, exists := lb.services[svcPort]
		if !exists || state == nil || len(newEndpoints) > 0 {
			klog.V(1).Infof("LoadBalancerRR: Setting endpoints for %s to %+v", svcPort, addrsOf(newEndpoints))
			// OnEndpointsAdd can be called without NewService; create the
			// service if it does not exist yet.
			state = lb.newServiceInternal(svcPort, v1.ServiceAffinity(""), 0)
			state.setEndpoints(newEndpoints)
		}
	}
}

func (lb *LoadBalancerRR) OnEndpointsUpdate(oldEndpoints, endpoints *v1.Endpoints) {
	portsToEndpoints := buildPortsToRAPEndpoints(endpoints)
	oldPortsToEndpoints := buildPortsToRAPEndpoints(oldEndpoints)
	registered := make(map[proxy.ServicePortName]bool)

	lb.lock.Lock()
	defer lb.lock.Unlock()

	for portname, newEndpoints := range portsToEndpoints {
		svcPort := servicePort(endpoints, portname)
		state, exists := lb.services[svcPort]
		var curEndpoints []string
		if state != nil {
			curEndpoints = state.endpoints
		}
		if !exists || state == nil || !sameEndpointSet(curEndpoints, newEndpoints) {
			klog.V(1).Infof("LoadBalancerRR: Setting endpoints for %s to %+v", svcPort, addrsOf(newEndpoints))
			lb.removeStaleAffinity(svcPort, newEndpoints)
			// OnEndpointsUpdate can be called without NewService; the
			// affinity is set later, when NewService is called.
			state = lb.newServiceInternal(svcPort, v1.ServiceAffinity(""), 0)
			state.setEndpoints(newEndpoints)
		} else {
			state.refreshNodes(newEndpoints)
		}
		registered[svcPort] = true
	}

	// Now reset every port missing from the update.
	for portname := range oldPortsToEndpoints {
		svcPort := servicePort(oldEndpoints, portname)
		if !registered[svcPort] {
			lb.resetService(svcPort)
		}
	}
}

// resetService empties a service's endpoints but keeps the service.
func (lb *LoadBalancerRR) resetService(svcPort proxy.ServicePortName) {
	if state, ok := lb.services[svcPort]; ok {
		if len(state.endpoints) > 0 {
			klog.V(2).Infof("LoadBalancerRR: Removing endpoints for %s", svcPort)
			state.endpoints = []string{}
		}
		state.ips, state.nodes = nil, nil
		state.index = 0
		state.affinity.affinityMap = map[string]*affinityState{}
		state.cursors = nil
		state.rr = 0
		state.book.clear()
		state.invalidatePlan()
	}
}

func (lb *LoadBalancerRR) OnEndpointsDelete(endpoints *v1.Endpoints) {
	portsToEndpoints := buildPortsToRAPEndpoints(endpoints)

	lb.lock.Lock()
	defer lb.lock.Unlock()

	for portname := range portsToEndpoints {
		svcPort := servicePort(endpoints, portname)
		lb.resetService(svcPort)
	}
}

func (lb *LoadBalancerRR) OnEndpointsSynced() {
}

func addrsOf(eps []rapEndpoint) []string {
	out := make([]string, len(eps))
	for i, ep := range eps {
		out[i] = ep.addr
	}
	return out
}

// sameEndpointSet: the same multiset of "ip:port" (kube-proxy's slicesEquiv).
func sameEndpointSet(cur []string, eps []rapEndpoint) bool {
	if len(cur) != len(eps) {
		return false
	}
	lhs := append([]string(nil), cur...)
	rhs := addrsOf(eps)
	sort.Strings(lhs)
	sort.Strings(rhs)
	return reflect.DeepEqual(lhs, rhs)
}

func (lb *LoadBalancerRR) CleanupStaleStickySessions(svcPort proxy.ServicePortName) {
	lb.lock.Lock()
	defer lb.lock.Unlock()

	state, exists := lb.services[svcPort]
	if !exists {
		return
	}
	now := lb.rap.now()
	for ip, sticky := range state.affinity.affinityMap {
		if int(now-sticky.lastUsed) >= state.affinity.ttlSeconds {
			klog.V(4).Infof("Removing client %s from affinityMap for service %q", sticky.clientIP, svcPort)
			delete(state.affinity.affinityMap, ip)
		}
	}
}
