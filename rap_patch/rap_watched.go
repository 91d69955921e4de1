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

// The aggregated monitor's bounded view (docs/scale.md "The bounded view"):
// a kube-proxy watches the records of its own node and, per Service port, of
// at most RAP_VIEW_NODES other nodes hosting its endpoints. Watching every
// node's record made a kube-proxy's bytes and CPU grow with the cluster
// (rap.scale: 48 kB per period at 100 KWOK nodes, 462 kB at 1,000). The
// nodes are picked by rendezvous hashing on (this node, that node), so each
// kube-proxy sees a different sample of the cluster and the forwarded load
// spreads instead of herding onto the same few nodes; a node joining or
// leaving moves only the views it enters or leaves. The Python proxy's
// watched_nodes and label_selector (rap/pyproxy/aggmonitor.py) pick the same
// nodes and the same selector.

package userspace

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sort"
	"strings"
)

const (
	// rapAggNodeLabel: the label rap.aggregator gives each record, rapNodeID
	// of its node: a node name may be 253 characters long, a label value 63.
	rapAggNodeLabel = "rap.io/node-id"
	// rapMaxSelected: above this many nodes the view's selector would be
	// longer than a URL should be (17 characters a node), so every record is
	// watched and the view applied by rapAggSnapshot alone.
	rapMaxSelected = 256
)

// rapNodeID: the first 16 hex digits of sha256(node), its records' label value.
func rapNodeID(node string) string {
	sum := sha256.Sum256([]byte(node))
	return hex.EncodeToString(sum[:8])
}

// rapWatchRank: node's rank in local's view, higher first.
func rapWatchRank(local, node string) uint64 {
	sum := sha256.Sum256([]byte(local + "\x00" + node))
	return binary.BigEndian.Uint64(sum[:8])
}

// rapWatchedNodes: for each Service port's endpoint nodes (serviceNodes), the
// k other nodes of highest rank (ties: lower name), united with local; nil
// when k is 0 (every node is watched).
func rapWatchedNodes(local string, serviceNodes [][]string, k int) map[string]bool {
	if k <= 0 {
		return nil
	}
	out := map[string]bool{local: true}
	// One sha256 per node for the whole call: Service ports share nodes, and
	// the sort compares each node many times.
	rank := map[string]uint64{}
	rankOf := func(n string) uint64 {
		r, ok := rank[n]
		if !ok {
			r = rapWatchRank(local, n)
			rank[n] = r
		}
		return r
	}
	for _, nodes := range serviceNodes {
		seen := map[string]bool{}
		var others []string
		for _, n := range nodes {
			if n != "" && n != local && !seen[n] {
				seen[n] = true
				others = append(others, n)
			}
		}
		sort.Slice(others, func(i, j int) bool {
			ri, rj := rankOf(others[i]), rankOf(others[j])
			if ri != rj {
				return ri > rj
			}
			return others[i] < others[j]
		})
		if len(others) > k {
			others = others[:k]
		}
		for _, n := range others {
			out[n] = true
		}
	}
	return out
}

// rapWatchSelector: the label selector of the records of selected (every
// record when selected is nil or holds more than rapMaxSelected nodes).
func rapWatchSelector(selected map[string]bool) string {
	if selected == nil || len(selected) > rapMaxSelected {
		return rapAggLoadLabel
	}
	ids := make([]string, 0, len(selected))
	for n := range selected {
		ids = append(ids, rapNodeID(n))
	}
	sort.Strings(ids)
	return rapAggLoadLabel + "," + rapAggNodeLabel + " in (" + strings.Join(ids, ",") + ")"
}

// rapMustReselect: whether the records informer, selecting selected, must
// restart for the view want. Not when want shrank: the records it no longer
// needs are left out by rapAggSnapshot, and endpoint churn anywhere in the
// cluster would otherwise re-list the whole view each time; but when the
// selection has grown to twice the view, so that it does not grow for good.
func rapMustReselect(selected, want map[string]bool) bool {
	if (selected == nil) != (want == nil) {
		return true
	}
	if want == nil {
		return false
	}
	for n := range want {
		if !selected[n] {
			return true
		}
	}
	return len(selected) > 2*len(want)
}
