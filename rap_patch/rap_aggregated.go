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
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
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
	CPU float64 `json:"cpu"`
	Mem float64 `json:"mem"`
}

type rapAggNodeJSON struct {
	Name string   `json:"name"`
	IP   string   `json:"ip"`
	CPU  *float64 `json:"cpu"`
	Mem  *float64 `json:"mem"`
}

// parseRAPLoad reads one rap-load-<node> ConfigMap. A record that does not
// parse is an error (logged once per object change) and contributes nothing.
func parseRAPLoad(cm *v1.ConfigMap) (rapAggNode, error) {
	var n rapAggNodeJSON
	if err := json.Unmarshal([]byte(cm.Data["node"]), &n); err != nil {
		return rapAggNode{}, fmt.Errorf("ConfigMap %s/%s: key node: %v", cm.Namespace, cm.Name, err)
	}
	if n.Name == "" {
		return rapAggNode{}, fmt.Errorf("ConfigMap %s/%s: key node has no name", cm.Namespace, cm.Name)
	}
	pods := map[string]rapAggUsage{}
	if raw := cm.Data["pods"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &pods); err != nil {
			return rapAggNode{}, fmt.Errorf("ConfigMap %s/%s: key pods: %v", cm.Namespace, cm.Name, err)
		}
	}
	out := rapAggNode{name: n.Name, ip: n.IP, pods: map[string]rapAggUsage{}}
	if n.CPU != nil && n.Mem != nil && rapUsableFraction(*n.CPU) && rapUsableFraction(*n.Mem) {
		out.node = &rapAggUsage{*n.CPU, *n.Mem}
	}
	for ip, u := range pods {
		if net.ParseIP(ip) != nil && rapUsableFraction(u.CPU) && rapUsableFraction(u.Mem) {
			out.pods[ip] = u
		}
	}
	return out, nil
}

// rapUsableFraction: a fraction the decision can use (a negative or non-finite one is
// no measurement, as quantity() reads it in the per-node monitor).
func rapUsableFraction(v float64) bool { return v >= 0 && v < 1e9 }

// parseRAPHeartbeat: the metrics timestamp the aggregator vouches for; zero
// when the Lease has none that parses.
func parseRAPHeartbeat(l *coordv1.Lease) time.Time {
	ts, err := time.Parse(time.RFC3339Nano, l.Annotations[rapAggMetricsTime])
	if err != nil {
		return time.Time{}
	}
	return ts
}

type rapAggMonitor struct {
	rb      *rapBalancer
	client  kubernetes.Interface
	rttPort int
	probes  int
	timeout time.Duration
	dial    func(ctx context.Context, addr string) error
	wall    func() time.Time
	// endpointNodes: the nodes hosting endpoints of this proxy's Services,
	// probed first; nil means none known.
	endpointNodes func() map[string]bool
	jitter        func(max time.Duration) time.Duration

	mu        sync.Mutex // the informers' handlers against the builder
	loads     map[string]rapAggNode
	badObject map[string]string // object name -> resourceVersion already logged as bad
	heartbeat time.Time
	changed   chan struct{} // one pending rebuild at most

	// Only the monitor's goroutine touches these.
	stamps    rapStamps
	rtt       map[string]rapRTT
	metricsOK *bool
}

func newRAPAggMonitor(rb *rapBalancer, client kubernetes.Interface, rttPort, probes int) *rapAggMonitor {
	timeout := time.Duration(rb.cfg.periodS * float64(time.Second))
	if timeout > 2*time.Second {
		timeout = 2 * time.Second
	}
	return &rapAggMonitor{
		rb: rb, client: client, rttPort: rttPort, probes: probes, timeout: timeout,
		dial: dialTCP, wall: time.Now,
		jitter:    func(max time.Duration) time.Duration { return time.Duration(rand.Int63n(int64(max) + 1)) },
		loads:     map[string]rapAggNode{},
		badObject: map[string]string{},
		changed:   make(chan struct{}, 1),
		stamps:    rapStamps{}, rtt: map[string]rapRTT{},
	}
}

// start registers the two informers (one list each, then watches) and runs
// the monitor until ctx ends.
func (m *rapAggMonitor) start(ctx context.Context) {
	loads := informers.NewSharedInformerFactoryWithOptions(m.client, 0, informers.WithNamespace(rapAggNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = rapAggLoadLabel }))
	lease := informers.NewSharedInformerFactoryWithOptions(m.client, 0, informers.WithNamespace(rapAggNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + rapAggLeaseName }))
	loads.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { m.onLoad(obj, false) },
		UpdateFunc: func(_, obj interface{}) { m.onLoad(obj, false) },
		DeleteFunc: func(obj interface{}) { m.onLoad(obj, true) },
	})
	lease.Coordination().V1().Leases().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { m.onLease(obj, false) },
		UpdateFunc: func(_, obj interface{}) { m.onLease(obj, false) },
		DeleteFunc: func(obj interface{}) { m.onLease(obj, true) },
	})
	loads.Start(ctx.Done())
	lease.Start(ctx.Done())
	go m.run(ctx)
}

func (m *rapAggMonitor) signal() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

func (m *rapAggMonitor) onLoad(obj interface{}, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = d.Obj, true
	}
	cm, ok := obj.(*v1.ConfigMap)
	if !ok || len(cm.Name) <= len(rapAggLoadPrefix) || cm.Name[:len(rapAggLoadPrefix)] != rapAggLoadPrefix {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
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

// run rebuilds the snapshot on every change the informers deliver, and once
// per period probes RTTs (after a jitter, so that a thousand kube-proxies do
// not dial in step) and rebuilds so that silence ages the samples.
func (m *rapAggMonitor) run(ctx context.Context) {
	period := time.Duration(m.rb.cfg.periodS * float64(time.Second))
	probeAt := time.NewTimer(m.jitter(period / 2))
	defer probeAt.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.changed:
			m.safely(func() { m.rebuild() })
		case <-probeAt.C:
			m.safely(func() { m.probeRound(ctx); m.rebuild() })
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

// rebuild swaps in a snapshot of everything published, every sample stamped
// with the heartbeat's metrics timestamp: the aggregator vouches for all of
// it at once, so all of it goes stale together when the aggregator stops.
func (m *rapAggMonitor) rebuild() {
	m.mu.Lock()
	hb := m.heartbeat
	loads := make([]rapAggNode, 0, len(m.loads))
	for _, rec := range m.loads {
		loads = append(loads, rec)
	}
	m.mu.Unlock()

	now, staleAfterS := m.rb.now(), m.rb.cfg.staleAfterS
	s := &rapSnapshot{pods: map[string]rapUsage{}, nodes: map[string]rapUsage{}}
	var err error
	if hb.IsZero() {
		err = fmt.Errorf("no heartbeat (Lease %s/%s) from rap.aggregator", rapAggNamespace, rapAggLeaseName)
	} else if at := m.stamps.at("aggregator", hb, now, m.wall()); now-at > staleAfterS {
		err = fmt.Errorf("the aggregator's newest metrics are %.1f s old (stale after %g s)", now-at, staleAfterS)
	} else {
		for _, rec := range loads {
			if rec.node != nil {
				s.nodes[rec.name] = rapUsage{cpu: rec.node.CPU, mem: rec.node.Mem, at: at}
			}
			for ip, u := range rec.pods {
				s.pods[ip] = rapUsage{cpu: u.CPU, mem: u.Mem, at: at}
			}
		}
	}
	m.stamps.prune(now, staleAfterS)
	m.rtt = mergeRTT(m.rtt, nil, now, staleAfterS)
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
	var hosting map[string]bool
	if m.endpointNodes != nil {
		hosting = m.endpointNodes()
	}
	m.mu.Lock()
	var all []rapProbeTarget
	for _, rec := range m.loads {
		if rec.name == m.rb.localNode || rec.ip == "" {
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
