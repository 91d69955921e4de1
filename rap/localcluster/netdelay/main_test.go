package main

import (
	"testing"
	"time"
)

func TestParseRule(t *testing.T) {
	r, err := ParseRule("queue=101,delay=20ms")
	if err != nil || r.Queue != 101 || r.Delay != 20*time.Millisecond {
		t.Fatalf("got %+v %v", r, err)
	}
	for _, bad := range []string{"", "queue=1", "delay=1ms", "queue=x,delay=1ms",
		"queue=1,delay=-1ms", "queue=1,delay=11s", "queue=70000,delay=1ms", "queue=1,delay=1ms,x=2", "queue"} {
		if _, err := ParseRule(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestRingFIFO(t *testing.T) {
	q := newDelayQueue(Rule{Queue: 1, Delay: 10 * time.Millisecond}, 4, 0)
	t0 := time.Now()
	for i := uint32(1); i <= 3; i++ {
		q.push(i, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if _, n, next := q.popDue(t0.Add(5*time.Millisecond), t0); n != 0 || !next.Equal(t0.Add(11*time.Millisecond)) {
		t.Fatalf("nothing due yet: n=%d next=%v", n, next.Sub(t0))
	}
	last, n, next := q.popDue(t0.Add(12*time.Millisecond), t0)
	if last != 2 || n != 2 || !next.Equal(t0.Add(13*time.Millisecond)) {
		t.Fatalf("want ids 1,2: last=%d n=%d", last, n)
	}
	// wrap around the ring
	for i := uint32(4); i <= 6; i++ {
		q.push(i, t0.Add(20*time.Millisecond))
	}
	last, n, next = q.popDue(t0.Add(time.Second), t0)
	if last != 6 || n != 4 || !next.IsZero() {
		t.Fatalf("want 3..6: last=%d n=%d", last, n)
	}
}
