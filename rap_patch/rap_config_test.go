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

// Tests of rap_config.go: the environment, and a bad value disabling RAP.

import (
	"strings"
	"testing"
)

func TestRAPDisabledByBadConfigIsRoundRobin(t *testing.T) {
	env := map[string]string{"RAP_CPU_THRESHOLD": "1.5", "RAP_NODE_NAME": "node-a"}
	rb := newRAPFromEnv(func(k string) string { return env[k] })
	if rb.enabled {
		t.Fatal("RAP enabled with RAP_CPU_THRESHOLD=1.5")
	}
	rapTestNoShuffle(t)
	lb := newLoadBalancer(rb)
	lb.OnEndpointsAdd(rapTestEndpoints(rapTestEPs...))
	rb.setSnapshot(rapTestSnapshot(rb.now(), nil, nil))
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.2.1:80", "10.0.3.1:80")
}

func TestRAPConfigFromEnv(t *testing.T) {
	get := func(env map[string]string) func(string) string { return func(k string) string { return env[k] } }
	c, err := rapConfigFromEnv(get(nil))
	if err != nil || c != defaultRAPConfig() {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c, err = rapConfigFromEnv(get(map[string]string{"RAP_PERIOD_S": "2", "RAP_W_NET": "0", "RAP_MEM_THRESHOLD": "1"}))
	if err != nil || c.periodS != 2 || c.staleAfterS != 6 || c.wNet != 0 || c.memThreshold != 1 {
		t.Fatalf("overrides: %+v, %v", c, err)
	}
	c, err = rapConfigFromEnv(get(map[string]string{"RAP_PERIOD_S": "2", "RAP_STALE_AFTER_S": "30"}))
	if err != nil || c.staleAfterS != 30 {
		t.Fatalf("stale_after: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"RAP_PERIOD_S": "0"}, []string{"RAP_PERIOD_S", "period_s", "> 0"}},
		{map[string]string{"RAP_STALE_AFTER_S": "-1"}, []string{"RAP_STALE_AFTER_S", "> 0"}},
		{map[string]string{"RAP_CPU_THRESHOLD": "1.5"}, []string{"RAP_CPU_THRESHOLD", "cpu_threshold", "(0, 1]", "1.5"}},
		{map[string]string{"RAP_MEM_THRESHOLD": "0"}, []string{"RAP_MEM_THRESHOLD", "(0, 1]"}},
		{map[string]string{"RAP_W_MEM": "-0.1"}, []string{"RAP_W_MEM", "w_mem", ">= 0"}},
		{map[string]string{"RAP_W_CPU": "0", "RAP_W_MEM": "0", "RAP_W_NET": "0"}, []string{"w_cpu + w_mem + w_net", "> 0"}},
		{map[string]string{"RAP_W_CPU": "lots"}, []string{"RAP_W_CPU", "a number", "lots"}},
		{map[string]string{"RAP_W_NET": "NaN"}, []string{"RAP_W_NET", "a number"}},
		{map[string]string{"RAP_PERIOD_S": "+Inf"}, []string{"RAP_PERIOD_S"}},
	} {
		_, err := rapConfigFromEnv(get(tc.env))
		if err == nil {
			t.Errorf("%v: accepted", tc.env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %q", tc.env, err, w)
			}
		}
	}
}
