package main

// System calls of the packet path that never block, made without telling the
// Go scheduler (RawSyscall). Through it (unix.Write and the like), a system
// call made while the runtime's monitor thread (sysmon) sleeps because the
// process is idle wakes that thread up: two more context switches per
// packet, which on this VM cost more than the packet. Only calls that return
// at once go here; the loop's one sleep goes through the runtime's poller.

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func rawWrite(fd int, b []byte) error {
	for {
		_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		if e != unix.EINTR {
			return errnoErr(e)
		}
	}
}

// rawRecvmmsg is recvmmsg(2) on msgs; with MSG_DONTWAIT only, so that it never blocks.
func rawRecvmmsg(fd int, msgs []mmsghdr) (int, error) {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])),
			uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
		if e != unix.EINTR {
			return int(n), errnoErr(e)
		}
	}
}

// rawEpollPoll is epoll_pwait(2) with a zero timeout: the events ready now.
func rawEpollPoll(ep int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	return int(n), errnoErr(e)
}

func rawTimerfdSettime(fd int, spec *unix.ItimerSpec) error {
	_, _, e := unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(fd), 0, uintptr(unsafe.Pointer(spec)), 0, 0, 0)
	return errnoErr(e)
}
