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
// 22(8):2869, 2022). It keeps every name the rest of the package, kube-proxy
// and upstream's unit tests use (LoadBalancerRR, NewLoadBalancerRR, the
// LoadBalancer and EndpointsHandler methods, balancerState.endpoints, ...) and
// kube-proxy's ClientIP session affinity, and adds the decision of the RAP
// toolkit's docs/algorithm.md, which the Python reference (rap/policies/rap.py)
// keeps too; the conformance vectors (tests/vectors) check that both agree.
//
// Configuration is read from environment variables, not flags, so that
// kube-proxy's command line does not change:
//
//	RAP_PERIOD_S        monitor period, seconds, > 0 (default 5)
//	RAP_STALE_AFTER_S   age after which an input is ignored, > 0 (default 3 x period)
//	RAP_CPU_THRESHOLD   CPU fraction at which a pod/node is overloaded, (0, 1] (0.8)
//	RAP_MEM_THRESHOLD   memory fraction at which a pod/node is overloaded, (0, 1] (0.9)
//	RAP_W_CPU, RAP_W_MEM, RAP_W_NET   score weights, >= 0, not all 0 (0.5, 0.2, 0.3)
//	RAP_NODE_NAME       this node's name (default: the lower-cased hostname)
//	RAP_KUBECONFIG      kubeconfig for the monitor; without it the monitor runs
//	                    only in a cluster (KUBERNETES_SERVICE_HOST set) and
//	                    RAP_ENABLE_MONITOR is not "false"
//	RAP_RTT_PORT        TCP port probed on every other node's InternalIP to
//	                    measure RTT (default 10250, the kubelet)
//
// A bad value does NOT stop kube-proxy: kube-proxy carries every Service of
// the node, and a crash loop over a tuning knob would take the node's Service
// networking down. Instead the error is logged (naming the variable, its value
// and the allowed range, repeated every 10 minutes so it is not missed) and
// RAP is disabled: the balancer is exactly kube-proxy's round robin. RAP never
// does worse than stock, and never runs with settings nobody asked for.
//
// Without a monitor (upstream's unit tests, a node with no configuration) no
// resource data ever arrives, and the balancer behaves exactly as kube-proxy's
// round robin.

package userspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"net"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
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

// rapScoreEpsilon: scores closer than this are ties (docs/algorithm.md step 4).
const rapScoreEpsilon = 1e-9

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
}

// rapPlan is the cached outcome of the decision: which group of endpoints a
// new connection goes to. It depends only on the endpoints, the snapshot and
// which inputs are still fresh, so it is reused until one of those changes;
// that makes NextEndpoint O(1) and allocation-free in the steady state.
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

func newAffinityPolicy(affinityType v1.ServiceAffinity, ttlSeconds int) *affinityPolicy {
	return &affinityPolicy{
		affinityType: affinityType,
		affinityMap:  make(map[string]*affinityState),
		ttlSeconds:   ttlSeconds,
	}
}

// NewLoadBalancerRR returns a new LoadBalancerRR. RAP's configuration comes
// from the environment (see the top of this file); the metrics monitor is
// started only when one is configured.
func NewLoadBalancerRR() *LoadBalancerRR {
	rb := newRAPFromEnv(os.Getenv)
	lb := newLoadBalancer(rb)
	if rb.enabled && monitorWanted(os.Getenv) {
		if err := startRAPMonitor(context.Background(), rb, os.Getenv); err != nil {
			klog.ErrorS(err, "RAP: cannot start the resource monitor; balancing as kube-proxy's round robin")
		}
	}
	return lb
}

func newLoadBalancer(rb *rapBalancer) *LoadBalancerRR {
	return &LoadBalancerRR{
		services: map[proxy.ServicePortName]*balancerState{},
		rap:      rb,
	}
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
				return sticky.endpoint, nil
			}
		}
	}

	endpoint := lb.rap.choose(state, now)

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
// round-robin index and RAP's cursors reset, any plan dropped.
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
	state.generation++
	state.plan = rapPlan{}
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
		state.generation++
		state.plan = rapPlan{}
	}
}

func (lb *LoadBalancerRR) OnEndpointsAdd(endpoints *v1.Endpoints) {
	portsToEndpoints := buildPortsToRAPEndpoints(endpoints)

	lb.lock.Lock()
	defer lb.lock.Unlock()

	for portname, newEndpoints := range portsToEndpoints {
		svcPort := proxy.ServicePortName{NamespacedName: types.NamespacedName{Namespace: endpoints.Namespace, Name: endpoints.Name}, Port: portname}
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
		svcPort := proxy.ServicePortName{NamespacedName: types.NamespacedName{Namespace: endpoints.Namespace, Name: endpoints.Name}, Port: portname}
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
		svcPort := proxy.ServicePortName{NamespacedName: types.NamespacedName{Namespace: oldEndpoints.Namespace, Name: oldEndpoints.Name}, Port: portname}
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
		state.generation++
		state.plan = rapPlan{}
	}
}

func (lb *LoadBalancerRR) OnEndpointsDelete(endpoints *v1.Endpoints) {
	portsToEndpoints := buildPortsToRAPEndpoints(endpoints)

	lb.lock.Lock()
	defer lb.lock.Unlock()

	for portname := range portsToEndpoints {
		svcPort := proxy.ServicePortName{NamespacedName: types.NamespacedName{Namespace: endpoints.Namespace, Name: endpoints.Name}, Port: portname}
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

// ---------------------------------------------------------------------------
// Configuration

type rapConfig struct {
	periodS      float64
	staleAfterS  float64
	cpuThreshold float64
	memThreshold float64
	wCPU         float64
	wMem         float64
	wNet         float64
}

func defaultRAPConfig() rapConfig {
	return rapConfig{periodS: 5, staleAfterS: 15, cpuThreshold: 0.8, memThreshold: 0.9, wCPU: 0.5, wMem: 0.2, wNet: 0.3}
}

// rapConfigError names the environment variable, the field of
// docs/algorithm.md and the allowed range.
type rapConfigError struct {
	env, field, allowed, value string
}

func (e *rapConfigError) Error() string {
	return fmt.Sprintf("%s (%s): must be %s, got %q", e.env, e.field, e.allowed, e.value)
}

func (c rapConfig) validate() error {
	bad := func(env, field, allowed string, v float64) error {
		return &rapConfigError{env, field, allowed, strconv.FormatFloat(v, 'g', -1, 64)}
	}
	if !(c.periodS > 0) || math.IsInf(c.periodS, 0) {
		return bad("RAP_PERIOD_S", "period_s", "> 0 seconds", c.periodS)
	}
	if !(c.staleAfterS > 0) || math.IsInf(c.staleAfterS, 0) {
		return bad("RAP_STALE_AFTER_S", "stale_after_s", "> 0 seconds", c.staleAfterS)
	}
	if !(c.cpuThreshold > 0 && c.cpuThreshold <= 1) {
		return bad("RAP_CPU_THRESHOLD", "cpu_threshold", "in (0, 1] (a fraction of the limit)", c.cpuThreshold)
	}
	if !(c.memThreshold > 0 && c.memThreshold <= 1) {
		return bad("RAP_MEM_THRESHOLD", "mem_threshold", "in (0, 1] (a fraction of the limit)", c.memThreshold)
	}
	for _, w := range []struct {
		env, field string
		v          float64
	}{{"RAP_W_CPU", "w_cpu", c.wCPU}, {"RAP_W_MEM", "w_mem", c.wMem}, {"RAP_W_NET", "w_net", c.wNet}} {
		if !(w.v >= 0) || math.IsInf(w.v, 0) {
			return bad(w.env, w.field, ">= 0 (and finite)", w.v)
		}
	}
	if !(c.wCPU+c.wMem+c.wNet > 0) {
		return &rapConfigError{"RAP_W_CPU + RAP_W_MEM + RAP_W_NET", "w_cpu + w_mem + w_net",
			"> 0 (all weights are 0, so no node can be scored)", "0"}
	}
	return nil
}

// rapConfigFromEnv reads the configuration; unset variables keep their
// defaults, RAP_STALE_AFTER_S defaults to 3 x RAP_PERIOD_S.
func rapConfigFromEnv(getenv func(string) string) (rapConfig, error) {
	c := defaultRAPConfig()
	staleSet := false
	for _, f := range []struct {
		env, field string
		dst        *float64
	}{
		{"RAP_PERIOD_S", "period_s", &c.periodS},
		{"RAP_STALE_AFTER_S", "stale_after_s", &c.staleAfterS},
		{"RAP_CPU_THRESHOLD", "cpu_threshold", &c.cpuThreshold},
		{"RAP_MEM_THRESHOLD", "mem_threshold", &c.memThreshold},
		{"RAP_W_CPU", "w_cpu", &c.wCPU},
		{"RAP_W_MEM", "w_mem", &c.wMem},
		{"RAP_W_NET", "w_net", &c.wNet},
	} {
		raw := strings.TrimSpace(getenv(f.env))
		if raw == "" {
			continue
		}
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(v) {
			return c, &rapConfigError{f.env, f.field, "a number", raw}
		}
		*f.dst = v
		if f.env == "RAP_STALE_AFTER_S" {
			staleSet = true
		}
	}
	if !staleSet {
		c.staleAfterS = 3 * c.periodS
	}
	return c, c.validate()
}

// ---------------------------------------------------------------------------
// The monitor's view of the cluster

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

var rapConfiguredOnce sync.Once

func newRAPFromEnv(getenv func(string) string) *rapBalancer {
	cfg, err := rapConfigFromEnv(getenv)
	rb := newRAPBalancer(cfg, localNodeName(getenv))
	if err != nil {
		rb.enabled = false
		rb.cfg = defaultRAPConfig()
		msg := "RAP: invalid configuration; RAP is DISABLED and this kube-proxy balances as stock round robin until the variable is fixed and kube-proxy restarted"
		klog.ErrorS(err, msg)
		go func() {
			for range time.Tick(10 * time.Minute) {
				klog.ErrorS(err, msg)
			}
		}()
		return rb
	}
	// kube-proxy makes one balancer; tests make hundreds: say it once.
	rapConfiguredOnce.Do(func() {
		klog.InfoS("RAP: resource adaptive proxy configured", "node", rb.localNode,
			"periodS", cfg.periodS, "staleAfterS", cfg.staleAfterS, "cpuThreshold", cfg.cpuThreshold,
			"memThreshold", cfg.memThreshold, "wCPU", cfg.wCPU, "wMem", cfg.wMem, "wNet", cfg.wNet)
	})
	return rb
}

func localNodeName(getenv func(string) string) string {
	if n := strings.TrimSpace(getenv("RAP_NODE_NAME")); n != "" {
		return n
	}
	h, err := os.Hostname()
	if err != nil {
		klog.ErrorS(err, "RAP: cannot read the hostname; set RAP_NODE_NAME to this node's name")
		return ""
	}
	// Kubernetes node names are the lower-cased hostname by default.
	return strings.ToLower(strings.TrimSpace(h))
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
func (rb *rapBalancer) setSnapshot(s *rapSnapshot) {
	if s == nil {
		s = emptyRAPSnapshot
	}
	rb.snap.Store(s)
}

// ---------------------------------------------------------------------------
// The decision (docs/algorithm.md)

// choose picks the endpoint for a new connection that no affinity entry
// decides. Called with lb.lock held; takes no other lock.
func (rb *rapBalancer) choose(state *balancerState, now float64) string {
	if rb == nil || !rb.enabled {
		return state.roundRobin()
	}
	snap := rb.snapshot()
	p := &state.plan
	if !p.valid || p.generation != state.generation || p.snap != snap ||
		!(p.computedAt <= now && now <= p.validUntil) {
		rb.decide(state, snap, now)
	}
	if p.roundRobin {
		return state.roundRobin()
	}
	c := *p.cursor
	*p.cursor = c + 1
	return p.candidates[c%len(p.candidates)]
}

// rapView holds the inputs of one decision: only those still fresh at now.
// validUntil is the earliest moment a consulted fresh input goes stale.
type rapView struct {
	cfg        *rapConfig
	snap       *rapSnapshot
	now        float64
	validUntil float64
}

func (v *rapView) fresh(at float64) bool {
	if v.now-at > v.cfg.staleAfterS {
		return false
	}
	if until := at + v.cfg.staleAfterS; until < v.validUntil {
		v.validUntil = until
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

// decide computes the plan of docs/algorithm.md steps 1-6 into state.plan.
func (rb *rapBalancer) decide(state *balancerState, snap *rapSnapshot, now float64) {
	view := rapView{cfg: &rb.cfg, snap: snap, now: now, validUntil: math.Inf(1)}
	free := map[string][]string{} // node -> free endpoints, in list order
	var order []string            // nodes in order of first free endpoint
	anyData := false
	for i, addr := range state.endpoints {
		pu, pok := view.pod(state.ips[i])
		_, nok := view.node(state.nodes[i])
		anyData = anyData || pok || nok
		if !view.overloaded(pu, pok) {
			n := state.nodes[i]
			if _, seen := free[n]; !seen {
				order = append(order, n)
			}
			free[n] = append(free[n], addr)
		}
	}
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
	if best, ok := rb.bestRemote(&view, free, order); ok {
		set(false, best, "forward: "+best+" scores best from "+local)
		return
	}
	if len(localFree) > 0 {
		set(false, local, "local: "+local+" overloaded but no other node has capacity")
		return
	}
	set(true, "", "all endpoints overloaded; round robin over all")
}

// bestRemote is step 4: the best-scoring other node with free endpoints.
func (rb *rapBalancer) bestRemote(view *rapView, free map[string][]string, order []string) (string, bool) {
	local := rb.localNode
	var remotes []string
	for _, n := range order {
		if n == local {
			continue
		}
		if u, ok := view.node(n); view.overloaded(u, ok) {
			continue
		}
		remotes = append(remotes, n)
	}
	if len(remotes) == 0 {
		return "", false
	}
	// rtt_max spans every node measured from the local node, not only candidates.
	rttMax := 0.0
	for n := range view.snap.rtt {
		if n == local {
			continue
		}
		if ms, ok := view.rtt(n); ok && ms > rttMax {
			rttMax = ms
		}
	}
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

// ---------------------------------------------------------------------------
// The monitor

const defaultRTTPort = 10250

// monitorWanted: a kubeconfig is given, or we run in a cluster and the
// monitor is not switched off. Never true in upstream's unit tests.
func monitorWanted(getenv func(string) string) bool {
	if getenv("RAP_KUBECONFIG") != "" {
		return true
	}
	return getenv("KUBERNETES_SERVICE_HOST") != "" && !strings.EqualFold(strings.TrimSpace(getenv("RAP_ENABLE_MONITOR")), "false")
}

type rapMonitor struct {
	rb      *rapBalancer
	client  kubernetes.Interface
	rttPort int
	timeout time.Duration
	// dial measures one TCP connect; replaced in tests.
	dial func(ctx context.Context, addr string) error

	metricsOK *bool // last state of the metrics source, for log-on-change
	rttCount  int
}

func startRAPMonitor(ctx context.Context, rb *rapBalancer, getenv func(string) string) error {
	var cfg *rest.Config
	var err error
	if kc := getenv("RAP_KUBECONFIG"); kc != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kc)
		if err != nil {
			return fmt.Errorf("RAP_KUBECONFIG=%s: %v", kc, err)
		}
	} else {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return fmt.Errorf("in-cluster configuration (set RAP_KUBECONFIG, or RAP_ENABLE_MONITOR=false): %v", err)
		}
	}
	port := defaultRTTPort
	if raw := strings.TrimSpace(getenv("RAP_RTT_PORT")); raw != "" {
		p, err := strconv.Atoi(raw)
		if err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("RAP_RTT_PORT: must be a TCP port in [1, 65535], got %q", raw)
		}
		port = p
	}
	m, err := newRAPMonitor(rb, cfg, port)
	if err != nil {
		return err
	}
	klog.InfoS("RAP: starting the resource monitor", "node", rb.localNode, "periodS", rb.cfg.periodS, "rttPort", port, "apiserver", cfg.Host)
	go m.run(ctx)
	return nil
}

func newRAPMonitor(rb *rapBalancer, cfg *rest.Config, rttPort int) (*rapMonitor, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kube-proxy-rap"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("RAP monitor client: %v", err)
	}
	timeout := time.Duration(rb.cfg.periodS * float64(time.Second))
	if timeout > 2*time.Second {
		timeout = 2 * time.Second
	}
	return &rapMonitor{rb: rb, client: client, rttPort: rttPort, timeout: timeout, dial: dialTCP}, nil
}

func dialTCP(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (m *rapMonitor) run(ctx context.Context) {
	period := time.Duration(m.rb.cfg.periodS * float64(time.Second))
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for {
		m.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// refresh takes one round of measurements and swaps in a new snapshot. What
// cannot be measured keeps its previous sample, which goes stale by itself.
func (m *rapMonitor) refresh(ctx context.Context) {
	old := m.rb.snapshot()
	next := &rapSnapshot{pods: old.pods, nodes: old.nodes, rtt: old.rtt}

	nodes, nodesErr := m.listNodes(ctx)
	pods, nodeUsage, err := m.fetchUsage(ctx, nodes, nodesErr)
	m.noteMetrics(err)
	if err == nil {
		next.pods, next.nodes = pods, nodeUsage
	}
	if nodesErr == nil {
		next.rtt = m.measureRTTs(ctx, nodes, old.rtt)
	}
	m.rb.setSnapshot(next)
}

// noteMetrics logs the metrics source's state once per change.
func (m *rapMonitor) noteMetrics(err error) {
	ok := err == nil
	if m.metricsOK != nil && *m.metricsOK == ok {
		return
	}
	m.metricsOK = &ok
	if ok {
		klog.InfoS("RAP: resource metrics available; balancing adaptively")
	} else {
		klog.ErrorS(err, "RAP: cannot read resource metrics; balancing as round robin until they return (old samples expire)", "staleAfterS", m.rb.cfg.staleAfterS)
	}
}

func (m *rapMonitor) listNodes(ctx context.Context) ([]v1.Node, error) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := m.client.CoreV1().Nodes().List(c, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %v", err)
	}
	return list.Items, nil
}

// The parts of metrics.k8s.io/v1beta1 the monitor reads (no new module).
type rapMetricsList struct {
	Items []struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Usage      v1.ResourceList `json:"usage"`
		Containers []struct {
			Usage v1.ResourceList `json:"usage"`
		} `json:"containers"`
	} `json:"items"`
}

func (m *rapMonitor) getMetrics(ctx context.Context, path string) (*rapMetricsList, error) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	raw, err := m.client.CoreV1().RESTClient().Get().AbsPath(path).DoRaw(c)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %v", path, err)
	}
	var out rapMetricsList
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("GET %s: malformed metrics: %v", path, err)
	}
	return &out, nil
}

// fetchUsage reads pod and node usage and divides it by pod limits (or
// requests) and node allocatable.
func (m *rapMonitor) fetchUsage(ctx context.Context, nodes []v1.Node, nodesErr error) (map[string]rapUsage, map[string]rapUsage, error) {
	if nodesErr != nil {
		return nil, nil, nodesErr
	}
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	podList, err := m.client.CoreV1().Pods("").List(c, metav1.ListOptions{FieldSelector: "status.phase=Running"})
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("list pods: %v", err)
	}
	podMetrics, err := m.getMetrics(ctx, "/apis/metrics.k8s.io/v1beta1/pods")
	if err != nil {
		return nil, nil, err
	}
	nodeMetrics, err := m.getMetrics(ctx, "/apis/metrics.k8s.io/v1beta1/nodes")
	if err != nil {
		return nil, nil, err
	}
	at := m.rb.now()
	return podUsageByIP(podList.Items, podMetrics, at), nodeUsageByName(nodes, nodeMetrics, at), nil
}

// podUsageByIP: a pod's CPU and memory use as fractions of the sum of its
// containers' limits (a container without a limit counts its request). A
// resource some container has neither for is unknown and counts as 0 (unknown
// is never overloaded); a pod with both unknown gets no sample. Host-network
// pods share their node's IP and are skipped.
func podUsageByIP(pods []v1.Pod, metrics *rapMetricsList, at float64) map[string]rapUsage {
	type capacity struct {
		ips      []string
		cpu, mem float64 // milli-CPU, bytes; 0 when unknown
	}
	byName := make(map[string]capacity, len(pods))
	for i := range pods {
		p := &pods[i]
		if p.Spec.HostNetwork {
			continue
		}
		var ips []string
		for _, pip := range p.Status.PodIPs {
			ips = append(ips, pip.IP)
		}
		if len(ips) == 0 && p.Status.PodIP != "" {
			ips = append(ips, p.Status.PodIP)
		}
		if len(ips) == 0 {
			continue
		}
		byName[p.Namespace+"/"+p.Name] = capacity{ips, containersCapacity(p, v1.ResourceCPU, true), containersCapacity(p, v1.ResourceMemory, false)}
	}
	out := map[string]rapUsage{}
	for _, item := range metrics.Items {
		cp, ok := byName[item.Metadata.Namespace+"/"+item.Metadata.Name]
		if !ok || (cp.cpu <= 0 && cp.mem <= 0) {
			continue
		}
		var cpuUsed, memUsed float64
		for _, c := range item.Containers {
			cpuUsed += quantity(c.Usage, v1.ResourceCPU, true)
			memUsed += quantity(c.Usage, v1.ResourceMemory, false)
		}
		u := rapUsage{at: at}
		if cp.cpu > 0 {
			u.cpu = cpuUsed / cp.cpu
		}
		if cp.mem > 0 {
			u.mem = memUsed / cp.mem
		}
		for _, ip := range cp.ips {
			out[ip] = u
		}
	}
	return out
}

func containersCapacity(p *v1.Pod, name v1.ResourceName, milli bool) float64 {
	total := 0.0
	for i := range p.Spec.Containers {
		c := &p.Spec.Containers[i]
		v := quantity(c.Resources.Limits, name, milli)
		if v <= 0 {
			v = quantity(c.Resources.Requests, name, milli)
		}
		if v <= 0 {
			return 0
		}
		total += v
	}
	return total
}

func quantity(list v1.ResourceList, name v1.ResourceName, milli bool) float64 {
	q, ok := list[name]
	if !ok {
		return 0
	}
	if milli {
		return float64(q.MilliValue())
	}
	return float64(q.Value())
}

// nodeUsageByName: a node's CPU and memory use as fractions of allocatable.
func nodeUsageByName(nodes []v1.Node, metrics *rapMetricsList, at float64) map[string]rapUsage {
	alloc := make(map[string]v1.ResourceList, len(nodes))
	for i := range nodes {
		alloc[nodes[i].Name] = nodes[i].Status.Allocatable
	}
	out := map[string]rapUsage{}
	for _, item := range metrics.Items {
		a, ok := alloc[item.Metadata.Name]
		if !ok {
			continue
		}
		cpuCap, memCap := quantity(a, v1.ResourceCPU, true), quantity(a, v1.ResourceMemory, false)
		if cpuCap <= 0 || memCap <= 0 {
			continue
		}
		out[item.Metadata.Name] = rapUsage{
			cpu: quantity(item.Usage, v1.ResourceCPU, true) / cpuCap,
			mem: quantity(item.Usage, v1.ResourceMemory, false) / memCap,
			at:  at,
		}
	}
	return out
}

// measureRTTs times a TCP connect from this node to every other node's
// InternalIP on the RTT port, in parallel. A refused connection still took a
// round trip and counts; a node that does not answer keeps its old sample.
func (m *rapMonitor) measureRTTs(ctx context.Context, nodes []v1.Node, old map[string]rapRTT) map[string]rapRTT {
	type result struct {
		node string
		rtt  rapRTT
		ok   bool
	}
	results := make(chan result, len(nodes))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range nodes {
		n := &nodes[i]
		if n.Name == m.rb.localNode {
			continue
		}
		ip := ""
		for _, a := range n.Status.Addresses {
			if a.Type == v1.NodeInternalIP {
				ip = a.Address
				break
			}
		}
		if ip == "" {
			continue
		}
		wg.Add(1)
		go func(name, addr string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, cancel := context.WithTimeout(ctx, m.timeout)
			defer cancel()
			start := time.Now()
			err := m.dial(c, addr)
			elapsed := time.Since(start)
			if err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
				klog.V(3).InfoS("RAP: RTT probe failed", "node", name, "addr", addr, "err", err)
				results <- result{node: name}
				return
			}
			results <- result{name, rapRTT{ms: float64(elapsed) / float64(time.Millisecond), at: m.rb.now()}, true}
		}(n.Name, net.JoinHostPort(ip, strconv.Itoa(m.rttPort)))
	}
	wg.Wait()
	close(results)
	out := make(map[string]rapRTT, len(nodes))
	for r := range results {
		if r.ok {
			out[r.node] = r.rtt
		} else if prev, ok := old[r.node]; ok {
			out[r.node] = prev
		}
	}
	return out
}
