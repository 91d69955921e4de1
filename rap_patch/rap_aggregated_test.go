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

package userspace

// Tests of rap_aggregated.go: the records' parsing, the monitor fed through
// real informers by client-go's fake clientset (its watch delivers every
// change), staleness when the heartbeat stops, the bounded probe order, and
// the monitor settings.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func rapLoadMap(node, nodeJSON, podsJSON string) *v1.ConfigMap {
	return &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: rapAggLoadPrefix + node, Namespace: rapAggNamespace,
			Labels: map[string]string{"rap.io/load": "true"}},
		Data: map[string]string{"node": nodeJSON, "pods": podsJSON},
	}
}

func rapLease(ts time.Time) *coordv1.Lease {
	return &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: rapAggLeaseName, Namespace: rapAggNamespace,
		Annotations: map[string]string{rapAggMetricsTime: ts.UTC().Format(time.RFC3339Nano)}}}
}

func TestRAPAggParseLoad(t *testing.T) {
	rec, err := parseRAPLoad(rapLoadMap("node-2", `{"name":"node-2","ip":"10.0.0.2","cpu":0.5,"mem":0.25}`,
		`{"10.1.2.3":{"cpu":0.9,"mem":0.1},"not-an-ip":{"cpu":0.1,"mem":0.1},"10.1.2.4":{"cpu":-1,"mem":0.1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if rec.name != "node-2" || rec.ip != "10.0.0.2" || rec.node == nil || rec.node.CPU != 0.5 || rec.node.Mem != 0.25 {
		t.Errorf("node record %+v", rec)
	}
	if len(rec.pods) != 1 || rec.pods["10.1.2.3"].CPU != 0.9 {
		t.Errorf("pods %+v: want only 10.1.2.3 (a bad IP and a negative use are no samples)", rec.pods)
	}
	// A node without a sample still carries its IP, for the RTT probe.
	rec, err = parseRAPLoad(rapLoadMap("node-3", `{"name":"node-3","ip":"10.0.0.3"}`, ""))
	if err != nil || rec.node != nil || rec.ip != "10.0.0.3" {
		t.Errorf("node without usage: %+v, %v", rec, err)
	}
	for _, bad := range []*v1.ConfigMap{
		rapLoadMap("x", `{"ip":"10.0.0.9"}`, "{}"),
		rapLoadMap("x", `not json`, "{}"),
		rapLoadMap("x", `{"name":"x"}`, `[1,2]`),
	} {
		if _, err := parseRAPLoad(bad); err == nil || !strings.Contains(err.Error(), "rap-load-x") {
			t.Errorf("%v: err %v, want one naming the ConfigMap", bad.Data, err)
		}
	}
}

// The rules the Python proxy's parse_load keeps too (docs/scale.md "The
// aggregator's objects"); each case was a disagreement between the two.
func TestRAPAggParseLoadAgreesWithThePythonReader(t *testing.T) {
	const node2 = `{"name":"node-2","ip":"10.0.0.2","cpu":0.5,"mem":0.25}`
	for _, c := range []struct {
		what, name, node, pods string
		wantErr                bool
		nodeUsage              bool
		wantPods               []string
		ip                     string
	}{
		{what: "a record under another node's name", name: "node-3", node: node2, pods: `{}`, wantErr: true},
		{what: "pods null", name: "node-2", node: node2, pods: `null`, wantErr: true},
		{what: "a name that is a number", name: "5", node: `{"name":5}`, pods: `{}`, wantErr: true},
		{what: "NaN, which is not JSON", name: "node-2", node: `{"name":"node-2","cpu":NaN,"mem":0}`, pods: `{}`, wantErr: true},
		{what: "a cpu that is a string: no node usage, the record stands", name: "node-2",
			node: `{"name":"node-2","ip":"10.0.0.2","cpu":"0.5","mem":0.25}`, pods: `{"10.1.2.3":{"cpu":0.1,"mem":0.1}}`,
			wantPods: []string{"10.1.2.3"}, ip: "10.0.0.2"},
		{what: "a number beyond float64: out of range, not unreadable", name: "node-2",
			node: `{"name":"node-2","cpu":1e400,"mem":0.25}`, pods: `{"10.1.2.3":{"cpu":1e400,"mem":0.1},"10.1.2.4":{"cpu":0.1,"mem":0.1}}`,
			wantPods: []string{"10.1.2.4"}},
		{what: "fields by their exact names only", name: "node-2", node: `{"name":"node-2","CPU":0.5,"Mem":0.25}`,
			pods: `{"10.1.2.3":{"CPU":0.9,"mem":0.1}}`},
		{what: "a pod entry without mem, one that is not an object, one that is a boolean", name: "node-2", node: node2,
			pods:      `{"10.1.2.3":{"cpu":0.9},"10.1.2.4":5,"10.1.2.5":{"cpu":true,"mem":0},"10.1.2.6":{"cpu":0,"mem":0}}`,
			nodeUsage: true, wantPods: []string{"10.1.2.6"}, ip: "10.0.0.2"},
		{what: "an ip that is not a string: no IP", name: "node-2", node: `{"name":"node-2","ip":7}`, pods: ``},
	} {
		rec, err := parseRAPLoad(rapLoadMap(c.name, c.node, c.pods))
		if (err != nil) != c.wantErr {
			t.Errorf("%s: err %v, want an error: %v", c.what, err, c.wantErr)
			continue
		}
		if c.wantErr {
			continue
		}
		got := []string{}
		for ip := range rec.pods {
			got = append(got, ip)
		}
		sort.Strings(got)
		if (rec.node != nil) != c.nodeUsage || strings.Join(got, ",") != strings.Join(c.wantPods, ",") || rec.ip != c.ip {
			t.Errorf("%s: node usage %v, pods %v, ip %q; want %v, %v, %q", c.what, rec.node, got, rec.ip, c.nodeUsage, c.wantPods, c.ip)
		}
	}
}

func TestRAPAggHeartbeatIsRFC3339Only(t *testing.T) {
	lease := func(raw string) *coordv1.Lease {
		return &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{rapAggMetricsTime: raw}}}
	}
	for raw, ok := range map[string]bool{
		"2027-01-15T08:00:00Z": true, "2027-01-15T08:00:00.123456789+01:00": true, "2027-01-15T08:00:00-00:00": true,
		"2027-01-15 08:00:00Z": false, "2027-01-15T8:00:00Z": false, "2027-01-15T08:00:00,5Z": false,
		"2027-01-15T08:00:00+24:00": false, "2027-01-15t08:00:00z": false, "2027-01-15T08:00:00": false, "": false,
	} {
		if got := !parseRAPHeartbeat(lease(raw)).IsZero(); got != ok {
			t.Errorf("%q: read %v, want %v", raw, got, ok)
		}
	}
}

func TestRAPAggSnapshotDropsAPodListedTwice(t *testing.T) {
	wall := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	loads := []rapAggNode{
		{name: "node-2", pods: map[string]rapAggUsage{"10.1.2.3": {0.9, 0.1}, "10.1.2.4": {0.2, 0.1}}},
		{name: "node-3", node: &rapAggUsage{0.5, 0.5}, pods: map[string]rapAggUsage{"10.1.2.3": {0.1, 0.1}}},
	}
	s, err := rapAggSnapshot(loads, wall.Add(-time.Second), rapStamps{}, 100, wall, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.pods["10.1.2.3"]; ok || len(s.pods) != 1 || s.pods["10.1.2.4"].at != 99 {
		t.Errorf("pods %v: want only 10.1.2.4, at 99 (a pod IP under two nodes has no sample)", s.pods)
	}
	if s.nodes["node-3"].cpu != 0.5 || len(s.nodes) != 1 {
		t.Errorf("nodes %v", s.nodes)
	}
}

// A heartbeat ahead of this node's clock counts as measured when first seen;
// once it stops it must stay stale, not come back fresh when a stamp is
// forgotten (the monitor used to prune it, and so saw it fresh again one
// rebuild after it went stale).
func TestRAPAggMonitorAStoppedHeartbeatAheadOfTheClockStaysStale(t *testing.T) {
	wall0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	now := 100.0
	rb := newRAPBalancer(rapTestConfig(), "node-1") // stale after 3 s
	rb.clock = func() float64 { return now }
	m := newRAPAggMonitor(rb, fake.NewSimpleClientset(), 10250, 2, 0) // not started: this test is its informers
	m.wall = func() time.Time { return wall0.Add(time.Duration((now - 100) * float64(time.Second))) }
	m.onLoad(rapLoadMap("node-2", `{"name":"node-2","ip":"10.0.0.2","cpu":0.5,"mem":0.25}`, `{"10.1.2.3":{"cpu":0.9,"mem":0.1}}`), false)
	m.onLease(rapLease(wall0.Add(time.Minute)), false)
	m.rebuild()
	if len(rb.snapshot().pods) != 1 {
		t.Fatal("a heartbeat ahead of the clock is not measured now")
	}
	for _, now = range []float64{103.5, 104.5, 110} {
		m.rebuild()
		if n := len(rb.snapshot().pods); n != 0 {
			t.Fatalf("at %g: %d pod samples from a heartbeat that stopped at 100", now, n)
		}
	}
}

// rapAggUnderTest starts a monitor on a fake clientset holding objs; its
// clock and wall are the test's.
func rapAggUnderTest(t *testing.T, objs ...interface{}) (*rapAggMonitor, *fake.Clientset, *float64, *time.Time) {
	t.Helper()
	client := fake.NewSimpleClientset()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, o := range objs {
		switch o := o.(type) {
		case *v1.ConfigMap:
			if _, err := client.CoreV1().ConfigMaps(rapAggNamespace).Create(ctx, o, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		case *coordv1.Lease:
			if _, err := client.CoordinationV1().Leases(rapAggNamespace).Create(ctx, o, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	rb := newRAPBalancer(rapTestConfig(), "node-1")
	now, wall := 100.0, time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	rb.clock = func() float64 { return now }
	m := newRAPAggMonitor(rb, client, 10250, 2, 0)
	m.wall = func() time.Time { return wall }
	m.dial = func(ctx context.Context, addr string) error { return nil }
	m.start(ctx)
	return m, client, &now, &wall
}

func rapTestConfig() rapConfig {
	c := defaultRAPConfig()
	c.periodS, c.staleAfterS = 1, 3
	return c
}

// rapEventually waits for cond over the informers' asynchronous delivery.
func rapEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRAPAggMonitorFollowsThePublishedRecords(t *testing.T) {
	wall := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	m, client, _, _ := rapAggUnderTest(t,
		rapLoadMap("node-2", `{"name":"node-2","ip":"10.0.0.2","cpu":0.5,"mem":0.25}`, `{"10.1.2.3":{"cpu":0.9,"mem":0.1}}`),
		rapLease(wall.Add(-time.Second)))
	rb := m.rb
	rapEventually(t, "the first snapshot", func() bool { return len(rb.snapshot().pods) == 1 })
	s := rb.snapshot()
	if u := s.pods["10.1.2.3"]; u.cpu != 0.9 || u.at != 99 {
		t.Errorf("pod sample %+v: want cpu 0.9 stamped at the heartbeat's metrics time (now 100 - 1 s)", u)
	}
	if u := s.nodes["node-2"]; u.cpu != 0.5 || u.mem != 0.25 {
		t.Errorf("node sample %+v", u)
	}
	if !s.podHot["10.1.2.3"] {
		t.Error("a pod at 0.9 CPU is not hot: the snapshot did not go through setSnapshot")
	}

	// A rewrite is seen without waiting for a period.
	cm := rapLoadMap("node-2", `{"name":"node-2","ip":"10.0.0.2","cpu":0.5,"mem":0.25}`, `{"10.1.2.3":{"cpu":0.2,"mem":0.1}}`)
	if _, err := client.CoreV1().ConfigMaps(rapAggNamespace).Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rapEventually(t, "the rewritten record", func() bool { return rb.snapshot().pods["10.1.2.3"].cpu == 0.2 })

	// A deleted record takes its samples with it.
	if err := client.CoreV1().ConfigMaps(rapAggNamespace).Delete(context.Background(), cm.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rapEventually(t, "the record's removal", func() bool { return len(rb.snapshot().pods) == 0 && len(rb.snapshot().nodes) == 0 })
}

func TestRAPAggMonitorGoesBlindWhenTheHeartbeatStops(t *testing.T) {
	wall := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	m, client, now, _ := rapAggUnderTest(t,
		rapLoadMap("node-2", `{"name":"node-2","ip":"10.0.0.2","cpu":0.5,"mem":0.25}`, `{"10.1.2.3":{"cpu":0.9,"mem":0.1}}`),
		rapLease(wall))
	rb := m.rb
	rapEventually(t, "the first snapshot", func() bool { return len(rb.snapshot().pods) == 1 })

	// The Lease is not renewed: once its metrics time is older than
	// stale_after_s (3 s here), every sample goes at once.
	*now = 103.5
	m.signal()
	rapEventually(t, "the stale snapshot", func() bool { return len(rb.snapshot().pods) == 0 && len(rb.snapshot().nodes) == 0 })
	if m.metricsOK == nil || *m.metricsOK {
		t.Error("a stale heartbeat was not noted as metrics unavailable")
	}

	// Renewed with a newer metrics time: back.
	if _, err := client.CoordinationV1().Leases(rapAggNamespace).Update(context.Background(), rapLease(wall.Add(3*time.Second)), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rapEventually(t, "the renewed snapshot", func() bool { return len(rb.snapshot().pods) == 1 })

	// No Lease at all: blind.
	if err := client.CoordinationV1().Leases(rapAggNamespace).Delete(context.Background(), rapAggLeaseName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rapEventually(t, "the snapshot without a heartbeat", func() bool { return len(rb.snapshot().pods) == 0 })
}

func TestRAPAggMonitorRebuildsOnceForABurstOfChanges(t *testing.T) {
	wall := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	m, client, _, _ := rapAggUnderTest(t, rapLease(wall))
	rapEventually(t, "the first snapshot", func() bool { return m.rb.snapshot() != nil })
	time.Sleep(2 * m.rebuildGap) // the start-up's rebuilds are over (the gap: a quarter of the 1 s period)
	before := atomic.LoadInt64(&m.rebuilds)
	// One aggregator round: twenty records, then the Lease.
	for i := 2; i < 22; i++ {
		name := fmt.Sprintf("node-%d", i)
		cm := rapLoadMap(name, fmt.Sprintf(`{"name":%q,"ip":"10.0.0.%d","cpu":0.5,"mem":0.25}`, name, i),
			fmt.Sprintf(`{"10.1.%d.3":{"cpu":0.4,"mem":0.1}}`, i))
		if _, err := client.CoreV1().ConfigMaps(rapAggNamespace).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.CoordinationV1().Leases(rapAggNamespace).Update(context.Background(), rapLease(wall.Add(time.Second)), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rapEventually(t, "every record in the snapshot", func() bool { return len(m.rb.snapshot().nodes) == 20 })
	// The probe round may add one rebuild of its own (once per period).
	if n := atomic.LoadInt64(&m.rebuilds) - before; n < 1 || n > 3 {
		t.Errorf("21 changes in one burst gave %d rebuilds; want one, or up to three when a probe round and the gap's edge fall inside", n)
	}
}

func TestRAPAggMonitorIgnoresAnUnreadableRecordOnly(t *testing.T) {
	wall := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	m, _, _, _ := rapAggUnderTest(t,
		rapLoadMap("node-2", `{"name":"node-2","ip":"10.0.0.2","cpu":0.5,"mem":0.25}`, `{"10.1.2.3":{"cpu":0.9,"mem":0.1}}`),
		rapLoadMap("node-3", `{broken`, `{}`),
		rapLease(wall))
	rapEventually(t, "the snapshot", func() bool { return len(m.rb.snapshot().nodes) == 1 })
	if _, ok := m.rb.snapshot().nodes["node-2"]; !ok {
		t.Error("node-2's good record was dropped with node-3's bad one")
	}
}

func TestRAPAggProbeTargetsAreBoundedAndPreferEndpointHosts(t *testing.T) {
	rb := newRAPBalancer(rapTestConfig(), "node-1")
	m := newRAPAggMonitor(rb, fake.NewSimpleClientset(), 10250, 2, 0)
	for _, n := range []string{"node-1", "node-2", "node-3", "node-4", "node-5"} {
		m.loads[rapAggLoadPrefix+n] = rapAggNode{name: n, ip: "10.0.0." + n[len(n)-1:]}
	}
	m.loads[rapAggLoadPrefix+"node-6"] = rapAggNode{name: "node-6"} // no IP: never dialled
	m.serviceNodes = func() [][]string { return [][]string{{"node-4"}, {"node-6", ""}} }
	m.rtt = map[string]rapRTT{"node-2": {ms: 1, at: 50}}

	got := m.probeTargets()
	names := []string{}
	for _, tg := range got {
		names = append(names, tg.name)
	}
	// node-4 hosts an endpoint; then node-3 and node-5 (never measured) before node-2 (measured at 50).
	if strings.Join(names, ",") != "node-4,node-3" {
		t.Errorf("targets %v, want node-4,node-3 (the local node and one without an IP never)", names)
	}
	if got[0].addr != "10.0.0.4:10250" {
		t.Errorf("address %q", got[0].addr)
	}

	// A round probes exactly those, and the next round moves on.
	m.probeRound(context.Background())
	if _, ok := m.rtt["node-4"]; !ok {
		t.Errorf("rtt after a round: %v", m.rtt)
	}
	rb.clock = func() float64 { return 1 }
	m.rtt["node-4"] = rapRTT{ms: 1, at: 60}
	m.rtt["node-3"] = rapRTT{ms: 1, at: 60}
	names = names[:0]
	for _, tg := range m.probeTargets() {
		names = append(names, tg.name)
	}
	if strings.Join(names, ",") != "node-4,node-5" {
		t.Errorf("second round %v, want node-4,node-5", names)
	}
}

func TestRAPMonitorSettingsFromEnv(t *testing.T) {
	get := func(env map[string]string) func(string) string { return func(k string) string { return env[k] } }
	ms, err := rapMonitorSettingsFromEnv(get(nil))
	if err != nil || ms != defaultRAPMonitorSettings() {
		t.Errorf("defaults %+v, %v", ms, err)
	}
	ms, err = rapMonitorSettingsFromEnv(get(map[string]string{"RAP_MONITOR": "aggregator", "RAP_RTT_PROBES": "8"}))
	if err != nil || ms.kind != rapMonitorAggregator || ms.rttProbes != 8 {
		t.Errorf("aggregator, 8: %+v, %v", ms, err)
	}
	for _, env := range []map[string]string{
		{"RAP_MONITOR": "central"}, {"RAP_RTT_PROBES": "0"}, {"RAP_RTT_PROBES": "1001"}, {"RAP_RTT_PROBES": "2.5"},
	} {
		if _, err := rapMonitorSettingsFromEnv(get(env)); err == nil {
			t.Errorf("%v accepted", env)
		}
	}
}

func TestRAPWatchedNodesPicksTheSameNodesWhateverTheOrder(t *testing.T) {
	services := [][]string{{"node-a", "node-b", "node-c", "node-d", "node-b", ""}}
	got := rapWatchedNodes("node-a", services, 1)
	// sha256("node-a\x00node-c") ranks highest of the three (the vector
	// aggregated-bounded-view-reads-only-watched-records gives the figures).
	if !rapSameNodes(got, map[string]bool{"node-a": true, "node-c": true}) {
		t.Errorf("k=1: %v", got)
	}
	reversed := [][]string{{"node-d", "node-c", "node-b", "node-a"}}
	if !rapSameNodes(rapWatchedNodes("node-a", reversed, 1), got) {
		t.Error("the view depends on the endpoints' order")
	}
	if all := rapWatchedNodes("node-a", services, 5); len(all) != 4 {
		t.Errorf("k above the node count: %v, want all 4", all)
	}
	if rapWatchedNodes("node-a", services, 0) != nil {
		t.Error("k=0 must mean every node (nil)")
	}
	two := rapWatchedNodes("node-a", [][]string{{"node-b", "node-c"}, {"node-d", "node-e"}}, 1)
	if len(two) != 3 {
		t.Errorf("one node per Service port and local: %v", two)
	}
	// The Python aggregator's node_id gives these (tests/unit/test_aggregator_publish.py holds the same).
	if id := rapNodeID("node-a"); id != "66570ff05a207404" {
		t.Errorf("rapNodeID(node-a) = %s", id)
	}
	if id := rapNodeID(strings.Repeat("n", 253)); len(id) != 16 {
		t.Errorf("a 253-character name's id %q is not 16 hex digits", id)
	}
	sel := rapWatchSelector(map[string]bool{"node-c": true, "node-a": true})
	if sel != "rap.io/load=true,rap.io/node-id in (092cd5e29db96478,66570ff05a207404)" {
		t.Errorf("selector %q: want the nodes' ids, sorted", sel)
	}
	big := map[string]bool{}
	for i := 0; i <= rapMaxSelected; i++ {
		big[fmt.Sprintf("node-%d", i)] = true
	}
	if sel := rapWatchSelector(big); sel != rapAggLoadLabel {
		t.Errorf("a view of %d nodes: selector %q, want every record's", len(big), sel)
	}
}

func TestRAPMustReselectOnlyWhenTheViewGrowsOrTheSelectionIsTwiceIt(t *testing.T) {
	set := func(names ...string) map[string]bool {
		out := map[string]bool{}
		for _, n := range names {
			out[n] = true
		}
		return out
	}
	for _, c := range []struct {
		selected, want map[string]bool
		restart        bool
	}{
		{set("a", "b", "c"), set("a", "b", "c"), false},
		{set("a", "b", "c"), set("a", "b"), false},          // shrank: filtered by rapAggSnapshot
		{set("a", "b", "c"), set("a", "d"), true},           // grew
		{set("a", "b", "c", "d", "e"), set("a", "b"), true}, // more than twice the view
		{nil, set("a"), true},
		{set("a"), nil, true},
		{nil, nil, false},
	} {
		if got := rapMustReselect(c.selected, c.want); got != c.restart {
			t.Errorf("selected %v, want %v: restart %v, expected %v", c.selected, c.want, got, c.restart)
		}
	}
}

// The bounded view end to end on a fake API server: the records informer
// lists with the view's selector, the snapshot holds only the watched nodes'
// samples (the fake's watch does not filter, so the reader's own filter is
// tested too), and a change of endpoints moves the view.
func TestRAPAggMonitorWatchesItsBoundedView(t *testing.T) {
	wall := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	client := fake.NewSimpleClientset()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for i, n := range []string{"node-a", "node-b", "node-c", "node-d"} {
		cm := rapLoadMap(n, fmt.Sprintf(`{"name":%q,"ip":"10.0.0.%d"}`, n, i+1), fmt.Sprintf(`{"10.1.%d.1":{"cpu":0.1,"mem":0.1}}`, i+1))
		cm.Labels[rapAggNodeLabel] = rapNodeID(n)
		if _, err := client.CoreV1().ConfigMaps(rapAggNamespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.CoordinationV1().Leases(rapAggNamespace).Create(ctx, rapLease(wall.Add(-time.Second)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := newRAPBalancer(rapTestConfig(), "node-a")
	rb.clock = func() float64 { return 100 }
	m := newRAPAggMonitor(rb, client, 10250, 2, 1)
	m.wall = func() time.Time { return wall }
	m.dial = func(ctx context.Context, addr string) error { return nil }
	var mu sync.Mutex
	services := [][]string{{"node-a", "node-b", "node-c", "node-d"}}
	m.serviceNodes = func() [][]string { mu.Lock(); defer mu.Unlock(); return services }
	m.start(ctx)
	pods := func() string {
		var ips []string
		for ip := range rb.snapshot().pods {
			ips = append(ips, ip)
		}
		sort.Strings(ips)
		return strings.Join(ips, ",")
	}
	rapEventually(t, "node-a's and node-c's samples only", func() bool { return pods() == "10.1.1.1,10.1.3.1" })
	if s := rb.snapshot(); !rapSameNodes(s.watched, map[string]bool{"node-a": true, "node-c": true}) {
		t.Errorf("snapshot's watched nodes %v", s.watched)
	}
	listed := func(selector string) bool {
		for _, a := range client.Actions() {
			if l, ok := a.(k8stesting.ListAction); ok && a.GetResource().Resource == "configmaps" &&
				l.GetListRestrictions().Labels.String() == selector {
				return true
			}
		}
		return false
	}
	if !listed(rapWatchSelector(map[string]bool{"node-a": true, "node-c": true})) {
		t.Error("the records were not listed with the bounded view's selector")
	}

	// The fake's watch does not filter by label: a change to node-b's record
	// reaches the informer, and the reader's own filter must keep it out.
	b := rapLoadMap("node-b", `{"name":"node-b","ip":"10.0.0.2"}`, `{"10.1.2.1":{"cpu":0.9,"mem":0.1}}`)
	b.Labels[rapAggNodeLabel] = rapNodeID("node-b")
	if _, err := client.CoreV1().ConfigMaps(rapAggNamespace).Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rapEventually(t, "node-b's update delivered", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.loads["rap-load-node-b"].pods["10.1.2.1"].CPU == 0.9
	})
	m.rebuild()
	if got := pods(); got != "10.1.1.1,10.1.3.1" {
		t.Errorf("after an update of an unwatched record the snapshot holds %s", got)
	}

	mu.Lock()
	services = [][]string{{"node-a", "node-b", "node-d"}}
	mu.Unlock()
	m.rewatch(ctx)
	// rewatch returned once the new watch listed, so the probe round that
	// follows it in run (probeTargets reads m.loads) dials the new view's node
	// at once. (probeTargets itself is the monitor goroutine's: m.rtt.)
	m.mu.Lock()
	_, listedD := m.loads["rap-load-node-d"]
	m.mu.Unlock()
	if !listedD {
		t.Error("rewatch returned before the new view's records were listed: no RTT for node-d this period")
	}
	rapEventually(t, "the view moved to node-d", func() bool { return pods() == "10.1.1.1,10.1.4.1" })
	if !listed(rapWatchSelector(map[string]bool{"node-a": true, "node-d": true})) {
		t.Error("the moved view was not listed with its own selector")
	}
	gen := m.watchGen
	m.rewatch(ctx)
	mu.Lock()
	services = [][]string{{"node-a", "node-d"}} // shrank: no restart, the view still moves
	mu.Unlock()
	m.rewatch(ctx)
	if m.watchGen != gen {
		t.Error("an unchanged or shrunk view restarted its watch")
	}
	if !rapSameNodes(m.watched, map[string]bool{"node-a": true, "node-d": true}) {
		t.Errorf("view after shrinking: %v", m.watched)
	}
}

// rapSameNodes: whether two views hold the same nodes (nil: every node).
func rapSameNodes(a, b map[string]bool) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for n := range a {
		if !b[n] {
			return false
		}
	}
	return true
}
