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

// RAP's settings: their defaults, how they are read from the environment and
// what values are allowed. rap/schemas/rap-config.json is the project's one
// statement of the table; rap_config_test.go checks this file against it.
// This file does not decide or measure anything.
//
// Configuration is read from environment variables, not flags, so that
// kube-proxy's command line does not change:
//
//	RAP_MODE            the decision rule, adaptive or classic (default adaptive)
//	RAP_PERIOD_S        monitor period, seconds, > 0 (default 5)
//	RAP_STALE_AFTER_S   age after which an input is ignored, > 0 (default 3 x period)
//	RAP_CPU_THRESHOLD   CPU fraction at which a pod/node is overloaded, (0, 1] (0.8)
//	RAP_MEM_THRESHOLD   memory fraction at which a pod/node is overloaded, (0, 1] (0.9)
//	RAP_W_CPU, RAP_W_MEM, RAP_W_NET   score weights, >= 0, not all 0 (0.5, 0.2, 0.3)
//	RAP_HYSTERESIS      adaptive: how far below a threshold a hot pod/node must
//	                    fall to cool, [0, 1) (0.1)
//	RAP_RTT_PER_CONN_MS adaptive: the RTT one more connection in flight is worth,
//	                    milliseconds, > 0 (10)
//	RAP_EJECT_S         how long an endpoint whose dial failed is a last resort,
//	                    seconds, > 0 (10)
//	RAP_NODE_NAME       this node's name (default: the lower-cased hostname)
//	RAP_KUBECONFIG      kubeconfig for the monitor; without it the monitor runs
//	                    only in a cluster (KUBERNETES_SERVICE_HOST set) and
//	                    RAP_ENABLE_MONITOR is not "false"
//	RAP_RTT_PORT        TCP port probed on every other node's InternalIP to
//	                    measure RTT, [1, 65535] (default 10250, the kubelet)
//	RAP_MONITOR         node (default: this process lists the cluster) or
//	                    aggregator (it watches rap.aggregator's objects)
//	RAP_RTT_PROBES      aggregator monitor: nodes dialled per period, [1, 1000] (16)
//	RAP_VIEW_NODES      aggregator monitor: per Service port, other nodes' records watched, [0, 1000] (32; 0 all)
//
// A bad value does NOT stop kube-proxy: kube-proxy carries every Service of
// the node, and a crash loop over a tuning knob would take the node's Service
// networking down. Instead the error is logged (naming the variable, its value
// and the allowed range, repeated every 10 minutes so it is not missed) and
// RAP is disabled: the balancer is exactly kube-proxy's round robin. RAP never
// does worse than stock, and never runs with settings nobody asked for. A bad
// RAP_RTT_PORT, RAP_MONITOR, RAP_RTT_PROBES or RAP_VIEW_NODES only keeps the
// monitor from starting (it is read when the monitor starts), which again
// leaves plain round robin.

package userspace

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// The decision rules RAP_MODE chooses between (docs/algorithm.md "Two modes").
const (
	rapModeAdaptive = "adaptive"
	rapModeClassic  = "classic"
)

// rapModes in the table's order, which is the order an error lists them in.
var rapModes = []string{rapModeAdaptive, rapModeClassic}

// The defaults, here and nowhere else in the Go code.
const (
	defaultMode         = rapModeAdaptive
	defaultPeriodS      = 5.0
	defaultCPUThreshold = 0.8
	defaultMemThreshold = 0.9
	defaultWCPU         = 0.5
	defaultWMem         = 0.2
	defaultWNet         = 0.3
	defaultHysteresis   = 0.1
	defaultRTTPerConnMS = 10.0
	defaultEjectS       = 10.0
	// An input survives two missed refreshes before it counts as missing.
	staleAfterPeriods = 3
	// The kubelet listens on every node, so a connect to it measures the RTT
	// without anything deployed for the purpose.
	defaultRTTPort = 10250
	rttPortEnv     = "RAP_RTT_PORT"
	// The monitor that feeds the decision (docs/scale.md "Which monitor runs").
	rapMonitorNode       = "node"
	rapMonitorAggregator = "aggregator"
	defaultMonitor       = rapMonitorNode
	monitorEnv           = "RAP_MONITOR"
	// The aggregated monitor dials at most this many nodes per period.
	defaultRTTProbes = 16
	maxRTTProbes     = 1000
	rttProbesEnv     = "RAP_RTT_PROBES"
	defaultViewNodes = 32
	maxViewNodes     = 1000
	viewNodesEnv     = "RAP_VIEW_NODES"
)

// rapMonitors in the table's order.
var rapMonitors = []string{rapMonitorNode, rapMonitorAggregator}

type rapConfig struct {
	mode         string // rapModeAdaptive or rapModeClassic
	periodS      float64
	staleAfterS  float64
	cpuThreshold float64
	memThreshold float64
	wCPU         float64
	wMem         float64
	wNet         float64
	hysteresis   float64
	rttPerConnMS float64
	ejectS       float64
}

func defaultRAPConfig() rapConfig {
	return rapConfig{
		mode:    defaultMode,
		periodS: defaultPeriodS, staleAfterS: staleAfterPeriods * defaultPeriodS,
		cpuThreshold: defaultCPUThreshold, memThreshold: defaultMemThreshold,
		wCPU: defaultWCPU, wMem: defaultWMem, wNet: defaultWNet,
		hysteresis: defaultHysteresis, rttPerConnMS: defaultRTTPerConnMS, ejectS: defaultEjectS,
	}
}

// rapSetting is one decision setting: where it is read from, what it may be,
// and the field of c it fills. A number fills dst and must pass ok; a choice
// (choices set) fills str and must be one of choices.
type rapSetting struct {
	env, field string // the environment variable; the field of docs/algorithm.md
	allowed    string // the allowed range, as an error states it
	ok         func(float64) bool
	dst        *float64
	choices    []string
	str        *string
}

func (s rapSetting) isChoice() bool { return s.str != nil }

func (s rapSetting) allows(v string) bool {
	for _, c := range s.choices {
		if v == c {
			return true
		}
	}
	return false
}

// settings lists c's fields in the order they are read and validated, so the
// first bad one is the one reported.
func (c *rapConfig) settings() []rapSetting {
	positive := func(v float64) bool { return v > 0 && !math.IsInf(v, 0) }
	fraction := func(v float64) bool { return v > 0 && v <= 1 }
	weight := func(v float64) bool { return v >= 0 && !math.IsInf(v, 0) }
	margin := func(v float64) bool { return v >= 0 && v < 1 }
	const frac, w = "in (0, 1] (a fraction of the limit)", ">= 0 (and finite)"
	num := func(env, field, allowed string, ok func(float64) bool, dst *float64) rapSetting {
		return rapSetting{env: env, field: field, allowed: allowed, ok: ok, dst: dst}
	}
	return []rapSetting{
		{env: "RAP_MODE", field: "mode", allowed: "one of " + strings.Join(rapModes, ", "),
			choices: rapModes, str: &c.mode},
		num("RAP_PERIOD_S", "period_s", "> 0 seconds", positive, &c.periodS),
		num("RAP_STALE_AFTER_S", "stale_after_s", "> 0 seconds", positive, &c.staleAfterS),
		num("RAP_CPU_THRESHOLD", "cpu_threshold", frac, fraction, &c.cpuThreshold),
		num("RAP_MEM_THRESHOLD", "mem_threshold", frac, fraction, &c.memThreshold),
		num("RAP_W_CPU", "w_cpu", w, weight, &c.wCPU),
		num("RAP_W_MEM", "w_mem", w, weight, &c.wMem),
		num("RAP_W_NET", "w_net", w, weight, &c.wNet),
		num("RAP_HYSTERESIS", "hysteresis", "in [0, 1) (a fraction below the threshold)", margin, &c.hysteresis),
		num("RAP_RTT_PER_CONN_MS", "rtt_per_conn_ms", "> 0 milliseconds", positive, &c.rttPerConnMS),
		num("RAP_EJECT_S", "eject_s", "> 0 seconds", positive, &c.ejectS),
	}
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
	for _, s := range c.settings() {
		if s.isChoice() {
			if !s.allows(*s.str) {
				return &rapConfigError{s.env, s.field, s.allowed, *s.str}
			}
			continue
		}
		if v := *s.dst; !s.ok(v) {
			return &rapConfigError{s.env, s.field, s.allowed, strconv.FormatFloat(v, 'g', -1, 64)}
		}
	}
	if !(c.wCPU+c.wMem+c.wNet > 0) {
		return &rapConfigError{"RAP_W_CPU + RAP_W_MEM + RAP_W_NET", "w_cpu + w_mem + w_net",
			"> 0 (all weights are 0, so no node can be scored)", "0"}
	}
	return nil
}

// buildRAPConfig starts from the defaults and lets set fill in each setting
// (reporting whether it gave one). stale_after_s, unless given, follows the
// period. The environment and the conformance vectors both come through here.
func buildRAPConfig(set func(s rapSetting) (bool, error)) (rapConfig, error) {
	c := defaultRAPConfig()
	staleSet := false
	for _, s := range c.settings() {
		given, err := set(s)
		if err != nil {
			return c, err
		}
		if given && s.dst == &c.staleAfterS {
			staleSet = true
		}
	}
	if !staleSet {
		c.staleAfterS = staleAfterPeriods * c.periodS
	}
	return c, c.validate()
}

// rapConfigFromEnv reads the configuration; unset variables keep their
// defaults, RAP_STALE_AFTER_S defaults to 3 x RAP_PERIOD_S.
func rapConfigFromEnv(getenv func(string) string) (rapConfig, error) {
	return buildRAPConfig(func(s rapSetting) (bool, error) {
		raw := strings.TrimSpace(getenv(s.env))
		if raw == "" {
			return false, nil
		}
		if s.isChoice() { // validate checks it against the choices
			*s.str = raw
			return true, nil
		}
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(v) {
			return false, &rapConfigError{s.env, s.field, "a number", raw}
		}
		*s.dst = v
		return true, nil
	})
}

// rapRTTPortFromEnv reads the monitor's RTT port. It is not part of rapConfig
// because no decision depends on it.
func rapRTTPortFromEnv(getenv func(string) string) (int, error) {
	raw := strings.TrimSpace(getenv(rttPortEnv))
	if raw == "" {
		return defaultRTTPort, nil
	}
	p, err := strconv.Atoi(raw)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%s: must be a TCP port in [1, 65535], got %q", rttPortEnv, raw)
	}
	return p, nil
}

// rapMonitorSettings: what only the monitor reads (scope "monitor" in the
// table); none of it changes a decision, so it is not part of rapConfig.
type rapMonitorSettings struct {
	kind      string // rapMonitorNode or rapMonitorAggregator
	rttPort   int
	rttProbes int
	viewNodes int // per Service, the other nodes whose records are watched; 0: every node's
}

func defaultRAPMonitorSettings() rapMonitorSettings {
	return rapMonitorSettings{kind: defaultMonitor, rttPort: defaultRTTPort, rttProbes: defaultRTTProbes, viewNodes: defaultViewNodes}
}

// rapMonitorSettingsFromEnv reads the monitor's settings; a bad one keeps the
// monitor from starting (round robin), as a bad RAP_RTT_PORT always has.
func rapMonitorSettingsFromEnv(getenv func(string) string) (rapMonitorSettings, error) {
	out := defaultRAPMonitorSettings()
	port, err := rapRTTPortFromEnv(getenv)
	if err != nil {
		return out, err
	}
	out.rttPort = port
	if raw := strings.TrimSpace(getenv(monitorEnv)); raw != "" {
		ok := false
		for _, k := range rapMonitors {
			ok = ok || raw == k
		}
		if !ok {
			return out, fmt.Errorf("%s: must be one of %s, got %q", monitorEnv, strings.Join(rapMonitors, ", "), raw)
		}
		out.kind = raw
	}
	if raw := strings.TrimSpace(getenv(rttProbesEnv)); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxRTTProbes {
			return out, fmt.Errorf("%s: must be a whole number of nodes in [1, %d], got %q", rttProbesEnv, maxRTTProbes, raw)
		}
		out.rttProbes = n
	}
	if raw := strings.TrimSpace(getenv(viewNodesEnv)); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 || n > maxViewNodes {
			return out, fmt.Errorf("%s: must be a whole number of nodes in [0, %d] (0: watch every node's record), got %q", viewNodesEnv, maxViewNodes, raw)
		}
		out.viewNodes = n
	}
	return out, nil
}

var rapConfiguredOnce sync.Once

// rapReminder repeats the newest configuration error every period from one
// goroutine for the whole process: kube-proxy makes one balancer, but every
// balancer made with a bad configuration once started its own ticker and
// goroutine, never stopped (hundreds in the tests).
type rapReminder struct {
	period time.Duration
	stop   chan struct{} // closed by tests; nil in kube-proxy, which never stops it
	once   sync.Once
	mu     sync.Mutex
	err    error
	msg    string
}

var rapConfigReminder = &rapReminder{period: 10 * time.Minute}

func (r *rapReminder) remind(err error, msg string) {
	r.mu.Lock()
	r.err, r.msg = err, msg
	r.mu.Unlock()
	r.once.Do(func() { go r.loop() })
}

func (r *rapReminder) loop() {
	ticker := time.NewTicker(r.period)
	defer ticker.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-ticker.C:
		}
		r.mu.Lock()
		err, msg := r.err, r.msg
		r.mu.Unlock()
		klog.ErrorS(err, msg)
	}
}

func newRAPFromEnv(getenv func(string) string) *rapBalancer {
	cfg, err := rapConfigFromEnv(getenv)
	rb := newRAPBalancer(cfg, localNodeName(getenv))
	if err != nil {
		rb.enabled = false
		rb.cfg = defaultRAPConfig()
		msg := "RAP: invalid configuration; RAP is DISABLED and this kube-proxy balances as stock round robin until the variable is fixed and kube-proxy restarted"
		klog.ErrorS(err, msg)
		rapConfigReminder.remind(err, msg)
		return rb
	}
	// kube-proxy makes one balancer; tests make hundreds: say it once.
	rapConfiguredOnce.Do(func() {
		klog.InfoS("RAP: resource adaptive proxy configured", "node", rb.localNode, "mode", cfg.mode,
			"periodS", cfg.periodS, "staleAfterS", cfg.staleAfterS, "cpuThreshold", cfg.cpuThreshold,
			"memThreshold", cfg.memThreshold, "wCPU", cfg.wCPU, "wMem", cfg.wMem, "wNet", cfg.wNet,
			"hysteresis", cfg.hysteresis, "rttPerConnMS", cfg.rttPerConnMS, "ejectS", cfg.ejectS)
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
