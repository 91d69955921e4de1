package main

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPollerTimerThenDescriptor(t *testing.T) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	p, err := newPoller(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	start := time.Now()
	now := func() time.Duration { return time.Since(start) }

	at := now() + 3*time.Millisecond
	if err := p.arm(at, now(), true); err != nil {
		t.Fatal(err)
	}
	ready, err := p.wait()
	if woke := now(); err != nil || woke < at || len(ready) != 1 || int(ready[0].Fd) != p.timer {
		t.Fatalf("want the timer at %v, not before: woke %v, ready %+v, err %v", at, woke, ready, err)
	}

	// Expired, then nothing to wait for: the timer must not stay ready
	// (a busy loop); only the pipe wakes the next wait.
	if err := p.arm(0, now(), false); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		unix.Write(fds[1], []byte{1})
	}()
	t0 := now()
	ready, err = p.wait()
	if waited := now() - t0; err != nil || waited < 15*time.Millisecond || len(ready) != 1 || int(ready[0].Fd) != fds[0] {
		t.Fatalf("want the pipe after ~20ms: waited %v, ready %+v, err %v", waited, ready, err)
	}
}
