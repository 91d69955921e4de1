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

// The monitor under faults: a panic while measuring is contained and leaves
// round robin, and a bad configuration starts no goroutine per balancer.

import (
	"bytes"
	"context"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"
)

// rapLog captures klog's output for one test.
type rapLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *rapLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *rapLog) has(s string) bool {
	klog.Flush()
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

func rapCaptureLog(t *testing.T) *rapLog {
	l := &rapLog{}
	klog.SetOutput(l)
	klog.LogToStderr(false)
	t.Cleanup(func() {
		klog.Flush()
		klog.SetOutput(os.Stderr)
		klog.LogToStderr(true)
	})
	return l
}

func rapWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestRAPMonitorPanicIsContainedAndBalancesRoundRobin(t *testing.T) {
	log := rapCaptureLog(t)
	_, m, rb, _ := rapTestMonitor(t)
	rapTestNoShuffle(t)
	rb.cfg.periodS = 0.02
	var boom, rounds int32
	wall := m.wall
	// The wall clock is read inside refresh, on the monitor's goroutine.
	m.wall = func() time.Time {
		atomic.AddInt32(&rounds, 1)
		if atomic.LoadInt32(&boom) == 1 {
			panic("injected fault")
		}
		return wall()
	}
	lb := newLoadBalancer(rb)
	lb.OnEndpointsAdd(rapTestEndpoints(
		rapTestEP{"10.0.1.1", "node-a"}, rapTestEP{"10.0.2.1", "node-b"}, rapTestEP{"10.0.1.2", "node-a"}))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	rapWaitFor(t, "a first snapshot", func() bool { return len(rb.snapshot().nodes) > 0 })
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.1.2:80", "10.0.1.1:80") // adaptive: local first

	atomic.StoreInt32(&boom, 1)
	rapWaitFor(t, "the panic logged", func() bool { return log.has("the resource monitor panicked") })
	if !log.has("injected fault") {
		t.Error("the log does not quote the panic")
	}
	rapWaitFor(t, "the snapshot emptied", func() bool { return len(rb.snapshot().nodes) == 0 })
	rapTestRoundRobin(t, lb, "10.0.1.1:80", "10.0.2.1:80", "10.0.1.2:80")
	// Still running: more rounds come, and one without the fault publishes again.
	seen := atomic.LoadInt32(&rounds)
	rapWaitFor(t, "more rounds after the panic", func() bool { return atomic.LoadInt32(&rounds) > seen+2 })
	select {
	case <-done:
		t.Fatal("the monitor stopped after a panic")
	default:
	}
	atomic.StoreInt32(&boom, 0)
	rapWaitFor(t, "recovery after the fault", func() bool { return len(rb.snapshot().nodes) > 0 })
}

// rapTestRoundRobin: the next len(all) answers are every endpoint once (the
// order depends on where the cursor stood; a local preference repeats one).
func rapTestRoundRobin(t *testing.T, lb *LoadBalancerRR, all ...string) {
	t.Helper()
	seen := map[string]bool{}
	for range all {
		seen[rapTestNext(t, lb)] = true
	}
	for _, ep := range all {
		if !seen[ep] {
			t.Errorf("round robin: %s not chosen in %d answers (got %v)", ep, len(all), seen)
		}
	}
}

func TestRAPMonitorPanickingProbeCostsOnlyItsSample(t *testing.T) {
	log := rapCaptureLog(t)
	_, m, rb, _ := rapTestMonitor(t)
	m.dial = func(context.Context, string) error { panic("injected probe fault") }
	m.refresh(context.Background()) // a panic here would end the test binary
	s := rb.snapshot()
	if len(s.rtt) != 0 {
		t.Errorf("rtt %v, want none from a panicking probe", s.rtt)
	}
	if len(s.nodes) == 0 || len(s.pods) == 0 {
		t.Error("the rest of the round was lost")
	}
	if !log.has("an RTT probe panicked") {
		t.Error("the probe's panic was not logged")
	}
}

func TestRAPBadConfigurationStartsNoGoroutinePerBalancer(t *testing.T) {
	bad := func(k string) string {
		if k == "RAP_MODE" {
			return "nonsense"
		}
		return ""
	}
	newRAPFromEnv(bad) // the process-wide reminder may start here, once
	runtime.GC()
	before := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		if rb := newRAPFromEnv(bad); rb.enabled {
			t.Fatal("a bad configuration left RAP enabled")
		}
	}
	time.Sleep(20 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("50 balancers with a bad configuration left %d more goroutines", after-before)
	}
}

func TestRAPReminderRepeatsTheNewestError(t *testing.T) {
	log := rapCaptureLog(t)
	r := &rapReminder{period: 10 * time.Millisecond, stop: make(chan struct{})}
	defer close(r.stop)
	r.remind(errFirst, "RAP: first")
	r.remind(errSecond, "RAP: second")
	rapWaitFor(t, "the reminder", func() bool { return log.has("RAP: second") && log.has("second error") })
	if log.has("RAP: first") {
		t.Error("the reminder repeats a replaced error")
	}
}

// Found by FuzzRAPQuantity: quantities past int64 wrapped negative, and
// negative ones were read as negative use (an endpoint looking emptier than idle).
func TestRAPQuantityNeverWrapsOrGoesNegative(t *testing.T) {
	for _, tc := range []struct {
		q     string
		milli bool
		want  float64
	}{
		{"8Ei", true, 8 * math.Pow(2, 60) * 1000},
		{"9223372036854775807", true, 9223372036854775807 * 1000.0},
		{"123456789012345678901234567890", false, 123456789012345678901234567890},
		{"-1", true, 0},
		{"-500m", false, 0},
		{"1500m", true, 1500},
		{"64Mi", false, 64 << 20},
	} {
		list := v1.ResourceList{v1.ResourceCPU: resource.MustParse(tc.q)}
		if got := quantity(list, v1.ResourceCPU, tc.milli); math.Abs(got-tc.want) > 1e-9*math.Max(1, tc.want) {
			t.Errorf("quantity(%q, milli=%v) = %v, want %v", tc.q, tc.milli, got, tc.want)
		}
	}
}

var errFirst, errSecond = rapErr("first error"), rapErr("second error")

type rapErr string

func (e rapErr) Error() string { return string(e) }
