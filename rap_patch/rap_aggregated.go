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

// RAP's aggregated monitor (RAP_MONITOR=aggregator, docs/scale.md): instead
// of listing the whole cluster every period, it watches what rap.aggregator
// publishes, one ConfigMap per node and one heartbeat Lease, and dials at
// most RAP_RTT_PROBES nodes per period. A kube-proxy's cost then follows
// what changes in the cluster, not the cluster's size. It builds the same
// snapshot (rap_snapshot.go) as the per-node monitor, so the decision does
// not know which monitor fed it.

package userspace

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// The aggregator's objects (docs/scale.md "The aggregator's objects").
const (
	rapAggNamespace   = "kube-system"
	rapAggLoadLabel   = "rap.io/load=true"
	rapAggLoadPrefix  = "rap-load-"
	rapAggLeaseName   = "rap-aggregator"
	rapAggMetricsTime = "rap.io/metrics-timestamp"
)

// rapAggNode is one node's published record, parsed.
type rapAggNode struct {
	name, ip string
	node     *rapAggUsage
	pods     map[string]rapAggUsage // by pod IP
}

type rapAggUsage struct {
	CPU float64
	Mem float64
}

// parseRAPLoad reads one rap-load-<node> ConfigMap, by the rules of
// tests/vectors/README.md ("How published is read"), the same as the Python
// proxy's parse_load (rap/pyproxy/aggmonitor.py). The record is an error
// (logged once per object change, contributing nothing) when node is not a
// JSON object with a non-empty string name, when the ConfigMap is not named
// rap-load-<that name>, or when pods is given and is not a JSON object.
// Within a readable record, what is not a usable sample is left out: no
// node usage unless cpu and mem are both numbers in [0, 1e9), no pod entry
// unless its key is an IP and its value such a pair, no IP unless ip is a
// string. The fields are read by exact name (encoding/json alone would match
// "CPU" too) and a number too large for a float64 is out of range, not an
// unreadable record.
func parseRAPLoad(cm *v1.ConfigMap) (rapAggNode, error) {
	bad := func(format string, args ...interface{}) (rapAggNode, error) {
		return rapAggNode{}, fmt.Errorf("ConfigMap %s/%s: "+format, append([]interface{}{cm.Namespace, cm.Name}, args...)...)
	}
	node, err := rapJSONObject(cm.Data["node"])
	if err != nil {
		return bad("key node: %v", err)
	}
	pods := map[string]json.RawMessage{}
	if raw := cm.Data["pods"]; raw != "" {
		if pods, err = rapJSONObject(raw); err != nil {
			return bad("key pods: %v", err)
		}
	}
	var name string
	if json.Unmarshal(node["name"], &name) != nil || name == "" {
		return bad("key node has no name")
	}
	if cm.Name != rapAggLoadPrefix+name {
		return bad("its record is node %q's, whose ConfigMap is %s%s", name, rapAggLoadPrefix, name)
	}
	out := rapAggNode{name: name, node: rapAggSample(node), pods: map[string]rapAggUsage{}}
	var ip string
	if json.Unmarshal(node["ip"], &ip) == nil {
		out.ip = ip
	}
	for podIP, raw := range pods {
		entry, err := rapJSONObject(string(raw))
		if err != nil || net.ParseIP(podIP) == nil {
			continue
		}
		if u := rapAggSample(entry); u != nil {
			out.pods[podIP] = *u
		}
	}
	return out, nil
}

// rapJSONObject: the members of the JSON object in text, unparsed.
func rapJSONObject(text string) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, fmt.Errorf("null is not a JSON object")
	}
	return obj, nil
}

// rapAggSample: an object's cpu and mem when both are usable fractions.
func rapAggSample(obj map[string]json.RawMessage) *rapAggUsage {
	cpu, okCPU := rapJSONFraction(obj["cpu"])
	mem, okMem := rapJSONFraction(obj["mem"])
	if !okCPU || !okMem {
		return nil
	}
	return &rapAggUsage{cpu, mem}
}

// rapJSONFraction: a JSON value (already checked to be JSON) that is a number
// the decision can use; a string, boolean, null or container is none.
func rapJSONFraction(raw json.RawMessage) (float64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil { // beyond a float64's range
		return 0, false
	}
	return v, rapUsableFraction(v)
}

// rapUsableFraction: a fraction the decision can use (a negative or non-finite one is
// no measurement, as quantity() reads it in the per-node monitor).
func rapUsableFraction(v float64) bool { return v >= 0 && v < 1e9 }

// rapAggRFC3339: the heartbeat's timestamp as the Python proxy reads it too
// (RFC3339 in rap/pyproxy/aggmonitor.py): time.Parse alone also takes a
// one-digit hour, a comma for the point, or an offset of +24:00.
var rapAggRFC3339 = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`)

// parseRAPHeartbeat: the metrics timestamp the aggregator vouches for; zero
// when the Lease has none that parses.
func parseRAPHeartbeat(l *coordv1.Lease) time.Time {
	raw := l.Annotations[rapAggMetricsTime]
	if !rapAggRFC3339.MatchString(raw) {
		return time.Time{}
	}
	ts, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}
	}
	return ts
}

// rapAggSnapshot: the snapshot of what the aggregator published (records
// parsed by parseRAPLoad, the heartbeat by parseRAPHeartbeat), without RTTs
// (this proxy probes them itself), and why it is empty if it is. Every
// sample is stamped with the heartbeat's metrics timestamp, under one key of
// stamps: the aggregator vouches for all of it at once, so all of it goes
// stale together when the aggregator stops, and none is used without a
// heartbeat or with one older than staleAfterS. The stamp is never pruned (it
// is one key): a heartbeat that stopped stays stale, even one ahead of wall.
// A pod IP with a sample in more than one record is ambiguous (a pod that
// moved, a record not yet rewritten) and gets none, whatever the order the
// records come in. The monitor's rebuild and the conformance vectors
// (vectors_test.go) both build their samples here; the Python proxy's
// published_samples is the same. With a bounded view (watched not nil, from
// rapWatchedNodes) only the records of watched nodes are read, and the
// snapshot's watched nodes are those of them that had a readable record:
// the decision treats an endpoint anywhere else as overloaded, since no
// sample of it is no evidence that it is idle.
func rapAggSnapshot(loads []rapAggNode, heartbeat time.Time, stamps rapStamps, now float64, wall time.Time,
	staleAfterS float64, watched map[string]bool) (*rapSnapshot, error) {
	s := &rapSnapshot{pods: map[string]rapUsage{}, nodes: map[string]rapUsage{}}
	if watched != nil {
		s.watched = map[string]bool{}
		var kept []rapAggNode
		for _, rec := range loads {
			if watched[rec.name] {
				kept = append(kept, rec)
				s.watched[rec.name] = true
			}
		}
		loads = kept
	}
	if heartbeat.IsZero() {
		return s, fmt.Errorf("no heartbeat (Lease %s/%s) from rap.aggregator", rapAggNamespace, rapAggLeaseName)
	}
	at := stamps.at("aggregator", heartbeat, now, wall)
	if now-at > staleAfterS {
		return s, fmt.Errorf("the aggregator's newest metrics are %.1f s old (stale after %g s)", now-at, staleAfterS)
	}
	listed := map[string]int{}
	for _, rec := range loads {
		for ip := range rec.pods {
			listed[ip]++
		}
	}
	for _, rec := range loads {
		if rec.node != nil {
			s.nodes[rec.name] = rapUsage{cpu: rec.node.CPU, mem: rec.node.Mem, at: at}
		}
		for ip, u := range rec.pods {
			if listed[ip] == 1 {
				s.pods[ip] = rapUsage{cpu: u.CPU, mem: u.Mem, at: at}
			}
		}
	}
	return s, nil
}

type rapAggMonitor struct {
	rb      *rapBalancer
	client  kubernetes.Interface
	rttPort int
	probes  int
	timeout time.Duration
	dial    func(ctx context.Context, addr string) error
	wall    func() time.Time
	// serviceNodes: per Service port, the nodes hosting its endpoints (the
	// bounded view is drawn from them, and they are probed first); nil
	// means none known.
	serviceNodes func() [][]string
	viewNodes    int // RAP_VIEW_NODES: 0 watches every node's record
	jitter       func(max time.Duration) time.Duration

	mu        sync.Mutex // the informers' handlers against the builder
	loads     map[string]rapAggNode
	badObject map[string]string // object name -> resourceVersion already logged as bad
	heartbeat time.Time
	watched   map[string]bool    // the bounded view's nodes (nil: every node's record)
	selected  map[string]bool    // what the records informer selects: watched or more (rapMustReselect)
	watchGen  int                // which records informer feeds m.loads; older ones' events are dropped
	stopLoads context.CancelFunc // stops the records informer (nil before the first)
	changed   chan struct{}      // one pending rebuild at most
	// rebuildGap: how long changes gather before one rebuild (a quarter period).
	rebuildGap time.Duration
	rebuilds   int64 // atomic: how many rebuilds ran (tests read it)

	// Only the monitor's goroutine touches these.
	stamps    rapStamps
	rtt       map[string]rapRTT
	metricsOK *bool
}

func newRAPAggMonitor(rb *rapBalancer, client kubernetes.Interface, rttPort, probes, viewNodes int) *rapAggMonitor {
	timeout := time.Duration(rb.cfg.periodS * float64(time.Second))
	if timeout > 2*time.Second {
		timeout = 2 * time.Second
	}
	return &rapAggMonitor{
		rb: rb, client: client, rttPort: rttPort, probes: probes, viewNodes: viewNodes, timeout: timeout,
		dial: dialTCP, wall: time.Now,
		jitter:     func(max time.Duration) time.Duration { return time.Duration(rand.Int63n(int64(max) + 1)) },
		loads:      map[string]rapAggNode{},
		badObject:  map[string]string{},
		changed:    make(chan struct{}, 1),
		rebuildGap: time.Duration(rb.cfg.periodS * float64(time.Second) / 4),
		stamps:     rapStamps{}, rtt: map[string]rapRTT{},
	}
}

// start registers the two informers (one list each, then watches) and runs
// the monitor until ctx ends.
func (m *rapAggMonitor) start(ctx context.Context) {
	lease := informers.NewSharedInformerFactoryWithOptions(m.client, 0, informers.WithNamespace(rapAggNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + rapAggLeaseName }))
	lease.Coordination().V1().Leases().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { m.onLease(obj, false) },
		UpdateFunc: func(_, obj interface{}) { m.onLease(obj, false) },
		DeleteFunc: func(obj interface{}) { m.onLease(obj, true) },
	})
	m.watchLoads(ctx, m.wantWatched())
	lease.Start(ctx.Done())
	go m.run(ctx)
}

// wantWatched: the bounded view for the Service ports kube-proxy carries now.
func (m *rapAggMonitor) wantWatched() map[string]bool {
	var services [][]string
	if m.serviceNodes != nil {
		services = m.serviceNodes()
	}
	return rapWatchedNodes(m.rb.localNode, services, m.viewNodes)
}

// watchLoads (re)starts the records informer on the selector of watched: a
// view changes only when endpoints do, and a new selector needs a new watch.
// The old informer's last events may still arrive; onLoadOf drops them by
// their generation. The records the old informer held stay until the new one
// has listed (so the snapshot does not go blind in between), then those it
// did not list go: one deleted while no watch was open sends no event.
func (m *rapAggMonitor) watchLoads(ctx context.Context, watched map[string]bool) <-chan struct{} {
	loadsCtx, stop := context.WithCancel(ctx)
	selector := rapWatchSelector(watched)
	m.mu.Lock()
	if m.stopLoads != nil {
		m.stopLoads()
	}
	m.stopLoads, m.watched, m.selected = stop, watched, watched
	m.watchGen++
	gen := m.watchGen
	m.mu.Unlock()
	loads := informers.NewSharedInformerFactoryWithOptions(m.client, 0, informers.WithNamespace(rapAggNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	informer := loads.Core().V1().ConfigMaps().Informer()
	informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { m.onLoadOf(gen, obj, false) },
		UpdateFunc: func(_, obj interface{}) { m.onLoadOf(gen, obj, false) },
		DeleteFunc: func(obj interface{}) { m.onLoadOf(gen, obj, true) },
	})
	loads.Start(loadsCtx.Done())
	synced := make(chan struct{})
	go func() {
		defer close(synced)
		if cache.WaitForCacheSync(loadsCtx.Done(), informer.HasSynced) {
			m.dropUnlisted(gen, informer.GetStore())
		}
	}()
	klog.V(2).InfoS("RAP: watching the aggregator's records", "selector", selector)
	return synced
}

// dropUnlisted forgets the records that generation gen's informer, now
// synced, does not hold.
func (m *rapAggMonitor) dropUnlisted(gen int, store cache.Store) {
	listed := map[string]bool{}
	for _, key := range store.ListKeys() {
		listed[key[len(rapAggNamespace)+1:]] = true // namespace/name
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if gen != m.watchGen {
		return
	}
	for name := range m.loads {
		if !listed[name] {
			delete(m.loads, name)
			delete(m.badObject, name)
		}
	}
	m.signal()
}

// rewatch moves the view when the Service ports' nodes moved it; the watch
// restarts only when rapMustReselect says so, and then rewatch waits (at
// most the probe timeout) for the new watch's first list: the probe round
// that follows dials the nodes whose records it holds, and the first view,
// made before kube-proxy knew any endpoint, holds only this node's, so
// without the wait a new kube-proxy measured no RTT for a whole period.
func (m *rapAggMonitor) rewatch(ctx context.Context) {
	want := m.wantWatched()
	m.mu.Lock()
	restart := rapMustReselect(m.selected, want)
	if !restart {
		m.watched = want
	}
	m.mu.Unlock()
	if !restart {
		return
	}
	wait := time.NewTimer(m.timeout)
	defer wait.Stop()
	select {
	case <-m.watchLoads(ctx, want):
	case <-wait.C:
	case <-ctx.Done():
	}
}

func (m *rapAggMonitor) signal() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// onLoad is onLoadOf for the current generation (the vectors' harness).
func (m *rapAggMonitor) onLoad(obj interface{}, deleted bool) {
	m.mu.Lock()
	gen := m.watchGen
	m.mu.Unlock()
	m.onLoadOf(gen, obj, deleted)
}

// onLoadOf takes one event of generation gen's informer into m.loads, under
// the same lock as the generation check.
func (m *rapAggMonitor) onLoadOf(gen int, obj interface{}, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = d.Obj, true
	}
	cm, ok := obj.(*v1.ConfigMap)
	if !ok || len(cm.Name) <= len(rapAggLoadPrefix) || cm.Name[:len(rapAggLoadPrefix)] != rapAggLoadPrefix {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if gen != m.watchGen {
		return
	}
	defer m.signal()
	if deleted {
		delete(m.loads, cm.Name)
		delete(m.badObject, cm.Name)
		return
	}
	rec, err := parseRAPLoad(cm)
	if err != nil {
		delete(m.loads, cm.Name)
		if m.badObject[cm.Name] != cm.ResourceVersion {
			m.badObject[cm.Name] = cm.ResourceVersion
			klog.ErrorS(err, "RAP: the aggregator published a record this kube-proxy cannot read; that node's samples are ignored until it is rewritten")
		}
		return
	}
	delete(m.badObject, cm.Name)
	m.loads[cm.Name] = rec
}

func (m *rapAggMonitor) onLease(obj interface{}, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = d.Obj, true
	}
	l, ok := obj.(*coordv1.Lease)
	if !ok || l.Name != rapAggLeaseName {
		return
	}
	m.mu.Lock()
	if deleted {
		m.heartbeat = time.Time{}
	} else {
		m.heartbeat = parseRAPHeartbeat(l)
	}
	m.mu.Unlock()
	m.signal()
}

// run rebuilds the snapshot once the informers deliver changes, at most one
// rebuild per rebuildGap, and once per period probes RTTs (after a jitter, so
// that a thousand kube-proxies do not dial in step) and rebuilds so that
// silence ages the samples. A rebuild walks every published record, and one
// aggregator round rewrites many ConfigMaps and then the Lease: rebuilding per
// event made a kube-proxy's CPU grow with the cluster's size times its rate
// of changes (measured by rap.scale: 0.9% of a core at 100 KWOK nodes, 4.4% at
// 300); one rebuild per burst bounds it to a few walks per period.
func (m *rapAggMonitor) run(ctx context.Context) {
	period := time.Duration(m.rb.cfg.periodS * float64(time.Second))
	probeAt := time.NewTimer(m.jitter(period / 2))
	defer probeAt.Stop()
	var settled <-chan time.Time // armed by the first change after a rebuild
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.changed:
			if settled == nil {
				settled = time.After(m.rebuildGap)
			}
		case <-settled:
			settled = nil
			m.safely(func() { m.rebuild() })
		case <-probeAt.C:
			m.safely(func() { m.rewatch(ctx); m.probeRound(ctx); m.rebuild() })
			probeAt.Reset(period)
		}
	}
}

// safely: a bug here must not take kube-proxy down; the snapshot is emptied
// (round robin) until a later round succeeds.
func (m *rapAggMonitor) safely(f func()) {
	defer func() {
		if r := recover(); r != nil {
			m.rb.setSnapshot(nil)
			m.metricsOK = nil
			klog.ErrorS(fmt.Errorf("panic: %v", r), "RAP: the aggregated monitor panicked; balancing as round robin, retrying",
				"stack", string(debug.Stack()))
		}
	}()
	f()
}

// published: the snapshot of what the informers hold (rapAggSnapshot), at now.
func (m *rapAggMonitor) published(now float64) (*rapSnapshot, error) {
	m.mu.Lock()
	hb, watched := m.heartbeat, m.watched
	loads := make([]rapAggNode, 0, len(m.loads))
	for _, rec := range m.loads {
		loads = append(loads, rec)
	}
	m.mu.Unlock()
	return rapAggSnapshot(loads, hb, m.stamps, now, m.wall(), m.rb.cfg.staleAfterS, watched)
}

// rebuild swaps in a snapshot of everything published, with the RTTs probed.
func (m *rapAggMonitor) rebuild() {
	atomic.AddInt64(&m.rebuilds, 1)
	now := m.rb.now()
	s, err := m.published(now)
	m.rtt = mergeRTT(m.rtt, nil, now, m.rb.cfg.staleAfterS)
	s.rtt = m.rtt
	m.noteMetrics(err)
	m.rb.setSnapshot(s)
}

// noteMetrics logs the source's state once per change, with the same lines
// as the per-node monitor (scripts wait for them).
func (m *rapAggMonitor) noteMetrics(err error) {
	ok := err == nil
	if m.metricsOK != nil && *m.metricsOK == ok {
		return
	}
	m.metricsOK = &ok
	if ok {
		klog.InfoS("RAP: resource metrics available; balancing adaptively", "monitor", "aggregator")
	} else {
		klog.ErrorS(err, "RAP: cannot read resource metrics; balancing as round robin until they return (old samples expire)",
			"monitor", "aggregator", "staleAfterS", m.rb.cfg.staleAfterS)
	}
}

// rapProbeTarget is a node the round may dial.
type rapProbeTarget struct {
	name, addr string
	hosts      bool    // hosts an endpoint of this proxy's Services
	lastAt     float64 // when its RTT was last measured; -1 never
}

// probeTargets picks at most m.probes nodes: those hosting endpoints first,
// within each group the longest unmeasured first, names breaking ties.
func (m *rapAggMonitor) probeTargets() []rapProbeTarget {
	hosting := map[string]bool{}
	if m.serviceNodes != nil {
		for _, nodes := range m.serviceNodes() {
			for _, n := range nodes {
				if n != "" {
					hosting[n] = true
				}
			}
		}
	}
	m.mu.Lock()
	var all []rapProbeTarget
	for _, rec := range m.loads {
		if rec.name == m.rb.localNode || rec.ip == "" || (m.watched != nil && !m.watched[rec.name]) {
			continue
		}
		last := -1.0
		if r, ok := m.rtt[rec.name]; ok {
			last = r.at
		}
		all = append(all, rapProbeTarget{rec.name, net.JoinHostPort(rec.ip, strconv.Itoa(m.rttPort)), hosting[rec.name], last})
	}
	m.mu.Unlock()
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if a.hosts != b.hosts {
			return a.hosts
		}
		if a.lastAt != b.lastAt {
			return a.lastAt < b.lastAt
		}
		return a.name < b.name
	})
	if len(all) > m.probes {
		all = all[:m.probes]
	}
	return all
}

// probeRound dials this round's targets, 16 at a time, and merges the answers.
func (m *rapAggMonitor) probeRound(ctx context.Context) {
	targets := m.probeTargets()
	type result struct {
		node string
		rtt  rapRTT
		ok   bool
	}
	results := make(chan result, len(targets))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	probe := &rapMonitor{rb: m.rb, timeout: m.timeout, dial: m.dial}
	for _, tg := range targets {
		wg.Add(1)
		go func(name, addr string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			defer func() {
				if r := recover(); r != nil {
					klog.ErrorS(fmt.Errorf("panic: %v", r), "RAP: an RTT probe panicked; no sample this round", "node", name)
				}
			}()
			rtt, ok := probe.probeRTT(ctx, name, addr)
			results <- result{name, rtt, ok}
		}(tg.name, tg.addr)
	}
	wg.Wait()
	close(results)
	measured := map[string]rapRTT{}
	for r := range results {
		if r.ok {
			measured[r.node] = r.rtt
		}
	}
	m.rtt = mergeRTT(m.rtt, measured, m.rb.now(), m.rb.cfg.staleAfterS)
}
