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

// RAP's monitor: every period it lists nodes and running pods through
// client-go, reads metrics.k8s.io for their CPU and memory use, times a TCP
// connect to every other node, and swaps the result in as a new snapshot
// (rap_snapshot.go). It is the only code of the patch that talks to the API
// server or the network; it does not decide (rap_decide.go), and a failure
// here only leaves the decision blind, which is kube-proxy's round robin.

package userspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// monitorWanted: the monitor starts only when RAP is configured on purpose,
// never merely because the process runs in some pod (upstream's tests on a
// CI inside Kubernetes see KUBERNETES_SERVICE_HOST too). A kubeconfig, or
// RAP_ENABLE_MONITOR=true, or RAP_NODE_NAME (the DaemonSet always sets it
// from spec.nodeName) turns it on; RAP_ENABLE_MONITOR=false turns the last
// off. A RAP_KUBECONFIG is never ignored.
func monitorWanted(getenv func(string) string) bool {
	if getenv("RAP_KUBECONFIG") != "" {
		return true
	}
	switch strings.ToLower(strings.TrimSpace(getenv("RAP_ENABLE_MONITOR"))) {
	case "true":
		return true
	case "false":
		return false
	}
	return strings.TrimSpace(getenv("RAP_NODE_NAME")) != ""
}

// startRAPMonitorIfWanted starts the monitor of an enabled balancer when one
// is configured; a failure is logged, and RAP stays blind (round robin).
func startRAPMonitorIfWanted(ctx context.Context, rb *rapBalancer, getenv func(string) string) {
	if !rb.enabled || !monitorWanted(getenv) {
		return
	}
	if err := startRAPMonitor(ctx, rb, getenv); err != nil {
		klog.ErrorS(err, "RAP: cannot start the resource monitor; balancing as kube-proxy's round robin")
	}
}

type rapMonitor struct {
	rb      *rapBalancer
	client  kubernetes.Interface
	rttPort int
	timeout time.Duration
	// dial measures one TCP connect; replaced in tests.
	dial func(ctx context.Context, addr string) error

	// wall reads the clock metrics.k8s.io's timestamps are on; replaced in tests.
	wall func() time.Time
	// Only the monitor's goroutine touches these.
	podStamps, nodeStamps rapStamps
	metricsOK             *bool // last state of the metrics source, for log-on-change
}

// monitorRESTConfig: RAP_KUBECONFIG if set, else the in-cluster service account.
func monitorRESTConfig(getenv func(string) string) (*rest.Config, error) {
	if kc := getenv("RAP_KUBECONFIG"); kc != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kc)
		if err != nil {
			return nil, fmt.Errorf("RAP_KUBECONFIG=%s: %v", kc, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster configuration (set RAP_KUBECONFIG, or RAP_ENABLE_MONITOR=false): %v", err)
	}
	return cfg, nil
}

func startRAPMonitor(ctx context.Context, rb *rapBalancer, getenv func(string) string) error {
	cfg, err := monitorRESTConfig(getenv)
	if err != nil {
		return err
	}
	ms, err := rapMonitorSettingsFromEnv(getenv)
	if err != nil {
		return err
	}
	if ms.kind == rapMonitorAggregator {
		return startRAPAggMonitor(ctx, rb, cfg, ms)
	}
	m, err := newRAPMonitor(rb, cfg, ms.rttPort)
	if err != nil {
		return err
	}
	klog.InfoS("RAP: starting the resource monitor", "monitor", ms.kind, "node", rb.localNode, "periodS", rb.cfg.periodS, "rttPort", ms.rttPort, "apiserver", cfg.Host)
	go m.run(ctx)
	return nil
}

func startRAPAggMonitor(ctx context.Context, rb *rapBalancer, cfg *rest.Config, ms rapMonitorSettings) error {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kube-proxy-rap"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("RAP monitor client: %v", err)
	}
	m := newRAPAggMonitor(rb, client, ms.rttPort, ms.rttProbes, ms.viewNodes)
	m.serviceNodes = rb.serviceNodes
	klog.InfoS("RAP: starting the resource monitor", "monitor", ms.kind, "node", rb.localNode, "periodS", rb.cfg.periodS,
		"rttPort", ms.rttPort, "rttProbes", ms.rttProbes, "viewNodes", ms.viewNodes, "namespace", rapAggNamespace, "apiserver", cfg.Host)
	m.start(ctx)
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
	return &rapMonitor{rb: rb, client: client, rttPort: rttPort, timeout: timeout, dial: dialTCP,
		wall: time.Now, podStamps: rapStamps{}, nodeStamps: rapStamps{}}, nil
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
		m.safeRefresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// safeRefresh is refresh with a panic contained: a bug in measuring must not
// take kube-proxy down. The snapshot is emptied, so the decision is blind
// (round robin) until a later round succeeds.
func (m *rapMonitor) safeRefresh(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			m.rb.setSnapshot(nil)
			m.metricsOK = nil // the next good round logs that metrics are back
			klog.ErrorS(fmt.Errorf("panic: %v", r), "RAP: the resource monitor panicked; balancing as round robin, retrying next period",
				"stack", string(debug.Stack()))
		}
	}()
	m.refresh(ctx)
}

// refresh takes one round of measurements and swaps in a new snapshot. It
// merges per item: what one fetch did not return (a pod metrics-server
// skipped, a source that failed) keeps its previous sample, which goes stale
// by itself; items older than stale_after_s are dropped so churned pods do
// not pile up.
func (m *rapMonitor) refresh(ctx context.Context) {
	old := m.rb.snapshot()
	nodes, nodesErr := m.listNodes(ctx)
	pods, podsErr := m.fetchPodUsage(ctx)
	nodeUsage, nodeUsageErr := m.fetchNodeUsage(ctx, nodes, nodesErr)
	var rtt map[string]rapRTT
	if nodesErr == nil {
		rtt = m.measureRTTs(ctx, nodes)
	}
	m.noteMetrics(firstError(podsErr, nodeUsageErr))

	now, staleAfterS := m.rb.now(), m.rb.cfg.staleAfterS
	m.podStamps.prune(now, staleAfterS)
	m.nodeStamps.prune(now, staleAfterS)
	m.rb.setSnapshot(&rapSnapshot{
		pods:  mergeUsage(old.pods, pods, now, staleAfterS),
		nodes: mergeUsage(old.nodes, nodeUsage, now, staleAfterS),
		rtt:   mergeRTT(old.rtt, rtt, now, staleAfterS),
	})
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// mergeUsage: a new map (the published one is never written) holding the
// fetched samples over the old ones, without those gone stale.
func mergeUsage(old, fetched map[string]rapUsage, now, staleAfterS float64) map[string]rapUsage {
	out := make(map[string]rapUsage, len(old)+len(fetched))
	for k, u := range old {
		out[k] = u
	}
	for k, u := range fetched {
		out[k] = u
	}
	for k, u := range out {
		if now-u.at > staleAfterS {
			delete(out, k)
		}
	}
	return out
}

// mergeRTT is mergeUsage for RTTs.
func mergeRTT(old, measured map[string]rapRTT, now, staleAfterS float64) map[string]rapRTT {
	out := make(map[string]rapRTT, len(old)+len(measured))
	for k, r := range old {
		out[k] = r
	}
	for k, r := range measured {
		out[k] = r
	}
	for k, r := range out {
		if now-r.at > staleAfterS {
			delete(out, k)
		}
	}
	return out
}

// rapStamp is where one metric's timestamp landed on the balancer's clock.
type rapStamp struct {
	ts time.Time
	at float64
}

// rapStamps by metric item ("namespace/name" of a pod, a node's name).
//
// A sample's at is the metric's own timestamp, not the fetch's: staleness
// must measure the data's age. metrics-server reports use over
// [timestamp - window, timestamp] and serves the same measurement until its
// next scrape, so a reading stamped when fetched would look fresh however old
// it is (and a stuck metrics-server would never go stale).
type rapStamps map[string]rapStamp

// at carries ts onto the balancer's monotonic clock: now - (wall - ts). The
// same timestamp again is the same measurement and keeps its at, so the
// decision's freshness horizon does not jitter with the fetch time. A
// timestamp ahead of wall (clock skew) counts as measured now; one missing
// counts as measured when fetched.
func (s rapStamps) at(key string, ts time.Time, now float64, wall time.Time) float64 {
	if ts.IsZero() {
		return now
	}
	if prev, ok := s[key]; ok && prev.ts.Equal(ts) {
		return prev.at
	}
	at := now - wall.Sub(ts).Seconds()
	if at > now {
		at = now
	}
	s[key] = rapStamp{ts, at}
	return at
}

func (s rapStamps) prune(now, staleAfterS float64) {
	for k, st := range s {
		if now-st.at > staleAfterS {
			delete(s, k)
		}
	}
}

// stamper binds stamps to this moment, taken once the metrics have arrived.
func (m *rapMonitor) stamper(stamps rapStamps) func(key string, ts time.Time) float64 {
	now, wall := m.rb.now(), m.wall()
	return func(key string, ts time.Time) float64 { return stamps.at(key, ts, now, wall) }
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
		Timestamp  metav1.Time     `json:"timestamp"` // the end of the window the usage is over
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

// fetchPodUsage reads pod usage and divides it by the pods' limits (or requests).
func (m *rapMonitor) fetchPodUsage(ctx context.Context) (map[string]rapUsage, error) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	podList, err := m.client.CoreV1().Pods("").List(c, metav1.ListOptions{FieldSelector: "status.phase=Running"})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("list pods: %v", err)
	}
	metrics, err := m.getMetrics(ctx, "/apis/metrics.k8s.io/v1beta1/pods")
	if err != nil {
		return nil, err
	}
	return podUsageByIP(podList.Items, metrics, m.stamper(m.podStamps)), nil
}

// fetchNodeUsage reads node usage and divides it by the nodes' allocatable.
func (m *rapMonitor) fetchNodeUsage(ctx context.Context, nodes []v1.Node, nodesErr error) (map[string]rapUsage, error) {
	if nodesErr != nil {
		return nil, nodesErr
	}
	metrics, err := m.getMetrics(ctx, "/apis/metrics.k8s.io/v1beta1/nodes")
	if err != nil {
		return nil, err
	}
	return nodeUsageByName(nodes, metrics, m.stamper(m.nodeStamps)), nil
}

// podIPs: every IP of the pod (PodIPs, else the older PodIP field).
func podIPs(p *v1.Pod) []string {
	var ips []string
	for _, pip := range p.Status.PodIPs {
		ips = append(ips, pip.IP)
	}
	if len(ips) == 0 && p.Status.PodIP != "" {
		ips = append(ips, p.Status.PodIP)
	}
	return ips
}

// podCapacity is what a pod's use is a fraction of.
type podCapacity struct {
	ips      []string
	cpu, mem float64 // milli-CPU, bytes; 0 when unknown
}

// podCapacities by "namespace/name". Host-network pods share their node's IP
// and are skipped, as are pods without an IP.
func podCapacities(pods []v1.Pod) map[string]podCapacity {
	byName := make(map[string]podCapacity, len(pods))
	for i := range pods {
		p := &pods[i]
		if p.Spec.HostNetwork {
			continue
		}
		ips := podIPs(p)
		if len(ips) == 0 {
			continue
		}
		byName[p.Namespace+"/"+p.Name] = podCapacity{ips, containersCapacity(p, v1.ResourceCPU, true), containersCapacity(p, v1.ResourceMemory, false)}
	}
	return byName
}

// podUsageByIP: a pod's CPU and memory use as fractions of the sum of its
// containers' limits (a container without a limit counts its request). A
// resource some container has neither for is unknown and counts as 0 (unknown
// is never overloaded); a pod with both unknown gets no sample.
func podUsageByIP(pods []v1.Pod, metrics *rapMetricsList, stamp func(key string, ts time.Time) float64) map[string]rapUsage {
	byName := podCapacities(pods)
	out := map[string]rapUsage{}
	for _, item := range metrics.Items {
		key := item.Metadata.Namespace + "/" + item.Metadata.Name
		cp, ok := byName[key]
		if !ok || (cp.cpu <= 0 && cp.mem <= 0) {
			continue
		}
		var cpuUsed, memUsed float64
		for _, c := range item.Containers {
			cpuUsed += quantity(c.Usage, v1.ResourceCPU, true)
			memUsed += quantity(c.Usage, v1.ResourceMemory, false)
		}
		u := rapUsage{at: stamp(key, item.Timestamp.Time)}
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

// quantity reads a resource as a number (milli-units when milli). Not
// MilliValue or Value: their int64 wraps past 2^63 (cpu "8Ei" read as -1000
// milli-CPU, found by FuzzRAPQuantity). A negative or non-finite value is no
// measurement and reads as 0, unknown, like a missing one.
func quantity(list v1.ResourceList, name v1.ResourceName, milli bool) float64 {
	q, ok := list[name]
	if !ok {
		return 0
	}
	v := q.AsApproximateFloat64()
	if milli {
		v *= 1000
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0
	}
	return v
}

// nodeUsageByName: a node's CPU and memory use as fractions of allocatable.
func nodeUsageByName(nodes []v1.Node, metrics *rapMetricsList, stamp func(key string, ts time.Time) float64) map[string]rapUsage {
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
			at:  stamp(item.Metadata.Name, item.Timestamp.Time),
		}
	}
	return out
}

func internalIP(n *v1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == v1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// probeRTT times one TCP connect. A refused connection still took a round
// trip and counts; anything else (a timeout, no route) is no sample.
func (m *rapMonitor) probeRTT(ctx context.Context, name, addr string) (rapRTT, bool) {
	c, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	start := time.Now()
	err := m.dial(c, addr)
	elapsed := time.Since(start)
	if err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
		klog.V(3).InfoS("RAP: RTT probe failed", "node", name, "addr", addr, "err", err)
		return rapRTT{}, false
	}
	return rapRTT{ms: float64(elapsed) / float64(time.Millisecond), at: m.rb.now()}, true
}

// measureRTTs probes every other node's InternalIP on the RTT port, at most
// 16 at a time so a large cluster costs bounded sockets. Only answers are
// returned; refresh's merge keeps a silent node's old sample until stale.
func (m *rapMonitor) measureRTTs(ctx context.Context, nodes []v1.Node) map[string]rapRTT {
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
		ip := internalIP(n)
		if n.Name == m.rb.localNode || ip == "" {
			continue
		}
		wg.Add(1)
		go func(name, addr string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// A panic here is off the monitor goroutine, where safeRefresh
			// cannot catch it: it costs this node's sample only.
			defer func() {
				if r := recover(); r != nil {
					klog.ErrorS(fmt.Errorf("panic: %v", r), "RAP: an RTT probe panicked; no sample this round", "node", name)
				}
			}()
			rtt, ok := m.probeRTT(ctx, name, addr)
			results <- result{name, rtt, ok}
		}(n.Name, net.JoinHostPort(ip, strconv.Itoa(m.rttPort)))
	}
	wg.Wait()
	close(results)
	out := make(map[string]rapRTT, len(nodes))
	for r := range results {
		if r.ok {
			out[r.node] = r.rtt
		}
	}
	return out
}
