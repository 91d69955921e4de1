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
// watched_nodes (rap/pyproxy/aggmonitor.py) picks the same nodes.

package userspace

import (
	"crypto/sha256"
	"encoding/binary"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// rapAggNodeLabel: the label rap.aggregator gives each record, its node's name
// (a node whose name is not a valid label value has none, so no bounded view
// can hold it).
const rapAggNodeLabel = "rap.io/node"

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
			ri, rj := rapWatchRank(local, others[i]), rapWatchRank(local, others[j])
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

// rapWatchSelector: the label selector of the records a view holds (every
// record when watched is nil). Names that cannot be label values are left
// out: the aggregator could not label their records.
func rapWatchSelector(watched map[string]bool) string {
	if watched == nil {
		return rapAggLoadLabel
	}
	var names []string
	for n := range watched {
		if len(validation.IsValidLabelValue(n)) == 0 && n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 { // "in ()" does not parse: a selector that matches nothing
		return rapAggLoadLabel + ",rap.io/load!=true"
	}
	sort.Strings(names)
	return rapAggLoadLabel + "," + rapAggNodeLabel + " in (" + strings.Join(names, ",") + ")"
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
