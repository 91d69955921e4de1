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

// BenchmarkNextEndpoint uses ONLY the public API that both upstream's
// roundrobin.go and rap.go export (NewLoadBalancerRR, OnEndpointsAdd,
// NextEndpoint), so this one file compiles into the stock package and into
// the RAP package alike, and the two runs compare like for like (benchstat).
// In the RAP tree no monitor runs in a test, so this measures RAP blind (its
// round robin plus the plan check); rap_bench_test.go measures RAP deciding
// with fresh metrics (RAP tree only).
//
// Side by side, from a build module that requires k8s.io/kubernetes v1.21.14
// with the package dir copied out of GOMODCACHE (as rap/build/'s
// scratch tree is; go refuses overlays beneath GOMODCACHE), with U the
// scratch tree's pkg/proxy/userspace and P this repo's rap_patch:
//
//	# stock: add only this file
//	echo '{"Replace":{"'$U'/bench_api_test.go":"'$P'/bench_api_test.go"}}' > stock.json
//	go test -overlay stock.json -run '^$' -bench 'NextEndpoint' -benchmem -count 5 \
//	    k8s.io/kubernetes/pkg/proxy/userspace | tee stock.txt
//	# RAP: swap roundrobin.go for rap.go and add every other rap_patch/*.go
//	# (the patch's added files and all the project's test files)
//	{ printf '{"Replace":{"%s/roundrobin.go":"%s/rap.go"' $U $P
//	  for f in $P/*.go; do n=${f##*/}; [ $n = rap.go ] || printf ',"%s/%s":"%s"' $U $n $f; done
//	  echo '}}'; } > rap.json
//	go test -overlay rap.json -run '^$' -bench 'NextEndpoint' -benchmem -count 5 \
//	    k8s.io/kubernetes/pkg/proxy/userspace | tee rap.txt
//	benchstat stock.txt rap.txt   # BenchmarkNextEndpoint/* lines pair up
//
// (rap/build/'s scratch tree and build module under the project cache
// work for this; point U at its pkg/proxy/userspace.)

import (
	"fmt"
	"net"
	"strconv"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kubernetes/pkg/proxy"
)

var benchSvc = proxy.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "bench", Name: "svc"}, Port: "http"}

// benchNodes: how many nodes n endpoints are spread over (3 -> 3, 30 -> 10, 300 -> 100).
func benchNodes(n int) int {
	if n <= 3 {
		return n
	}
	return n / 3
}

// benchEndpoints: n endpoints 10.x.y.z:8080, endpoint i on node-(i % nodes).
func benchEndpoints(n int) *v1.Endpoints {
	obj := &v1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: benchSvc.Namespace, Name: benchSvc.Name}}
	nodes := benchNodes(n)
	for i := 0; i < n; i++ {
		node := "node-" + strconv.Itoa(i%nodes)
		obj.Subsets = append(obj.Subsets, v1.EndpointSubset{
			Addresses: []v1.EndpointAddress{{IP: benchIP(i), NodeName: &node}},
			Ports:     []v1.EndpointPort{{Name: benchSvc.Port, Port: 8080}},
		})
	}
	return obj
}

func benchIP(i int) string {
	return fmt.Sprintf("10.%d.%d.%d", 1+i/65536, (i/256)%256, i%256)
}

var benchSizes = []int{3, 30, 300}

func BenchmarkNextEndpoint(b *testing.B) {
	src := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}
	NewLoadBalancerRR() // any start-up log line comes out here, not inside a result line
	for _, n := range benchSizes {
		b.Run("endpoints="+strconv.Itoa(n), func(b *testing.B) {
			lb := NewLoadBalancerRR()
			lb.OnEndpointsAdd(benchEndpoints(n))
			if _, err := lb.NextEndpoint(benchSvc, src, false); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := lb.NextEndpoint(benchSvc, src, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
