package main

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// poller is how the loop sleeps: an epoll set of the netlink socket, a timer
// (timerfd: nanosecond precision) and the stop pipe, itself waited on through
// the Go runtime's own poller. So the one goroutine parks like any network
// read, the runtime's thread sleeps in its epoll_wait, and nothing else in the
// process wakes up: a blocking system call instead (ppoll) makes the runtime
// hand the thread's P around on every long sleep and preempt it with signals,
// which cost more CPU than the packets. (With GOMAXPROCS 1, see run, a ready
// goroutine never wakes a second thread either.)
type poller struct {
	ep, timer int
	raw       syscall.RawConn
	file      *os.File
	events    [3]unix.EpollEvent
	ready     []unix.EpollEvent
	err       error
	check     func(uintptr) bool
	armedAt   time.Duration // what the timer is set to, on the delayer's clock
	armed     bool
}

func newPoller(fds ...int) (*poller, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	timer, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	p := &poller{ep: ep, timer: timer}
	for _, fd := range append(fds, timer) {
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			p.close()
			return nil, fmt.Errorf("epoll add: %w", err)
		}
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		p.close()
		return nil, err
	}
	p.file = os.NewFile(uintptr(ep), "netdelay-epoll") // non-blocking: the runtime polls it
	sc, err := p.file.SyscallConn()
	if err != nil {
		p.close()
		return nil, err
	}
	p.raw = sc
	p.check = p.poll // made once: a method value per wait would be allocated each time
	return p, nil
}

func (p *poller) close() {
	unix.Close(p.timer)
	if p.file != nil {
		p.file.Close()
	} else {
		unix.Close(p.ep)
	}
}

// arm sets the timer to fire at “at“ (now is the current time on the same
// clock); disarms it when ok is false. No system call if nothing changed.
func (p *poller) arm(at, now time.Duration, ok bool) error {
	if ok == p.armed && (!ok || at == p.armedAt) {
		return nil
	}
	var spec unix.ItimerSpec // zero: disarm
	if ok {
		spec.Value = unix.NsecToTimespec(max(int64(at-now), 1))
	}
	p.armedAt, p.armed = at, ok
	// Setting it also clears an expiry's readiness, so the count is never read:
	// after one, the next arm is always a new time or a disarm.
	return rawTimerfdSettime(p.timer, &spec)
}

// wait parks until one of the descriptors is readable; the ready ones.
func (p *poller) wait() ([]unix.EpollEvent, error) {
	p.ready, p.err = nil, nil
	err := p.raw.Read(p.check)
	if err == nil {
		err = p.err
	}
	return p.ready, err
}

// poll is what the runtime calls while it waits: true once something is ready.
func (p *poller) poll(uintptr) bool {
	n, err := rawEpollPoll(p.ep, p.events[:])
	if err == unix.EINTR || (err == nil && n == 0) {
		return false // nothing yet: park until the epoll set is readable
	}
	p.ready, p.err = p.events[:max(n, 0)], err
	return true
}
