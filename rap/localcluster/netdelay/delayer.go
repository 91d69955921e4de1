package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// delayer is the one loop that holds and releases the packets of all queues.
type delayer struct {
	nfq    *nfqConn
	queues []*delayQueue
	byNum  map[uint16]*delayQueue
	epoch  time.Time
	stray  uint64 // packets of a queue this process did not bind (cannot happen; counted, accepted)
}

// now is the time since start on the monotonic clock (a vDSO read, no system call).
func (d *delayer) now() time.Duration { return time.Since(d.epoch) }

// onPacket holds a packet that arrived at now, or accepts it at once if it cannot be held.
func (d *delayer) onPacket(queue uint16, id uint32, now time.Duration) {
	q := d.byNum[queue]
	if q == nil {
		d.stray++
		d.nfq.out = appendVerdict(d.nfq.out, msgVerdict, queue, id)
		return
	}
	if !q.push(id, now) {
		d.nfq.out = appendVerdict(d.nfq.out, msgVerdict, queue, id)
	}
}

// onError counts a verdict the kernel refused (it echoes the request, whose res_id is the queue).
func (d *delayer) onError(m []byte) {
	if len(m) < nlmsgHdrLen+4 || native.Uint32(m[nlmsgHdrLen:]) == 0 {
		return // an acknowledgement
	}
	if echo := m[nlmsgHdrLen+4:]; len(echo) >= nlmsgHdrLen+nfgenLen {
		if q := d.byNum[uint16(echo[nlmsgHdrLen+2])<<8|uint16(echo[nlmsgHdrLen+3])]; q != nil {
			q.errs++
		}
	}
}

// receive handles the datagrams of the last recv, all stamped with one arrival time.
func (d *delayer) receive(n int, now time.Duration) {
	for i := 0; i < n; i++ {
		d.nfq.each(i, func(typ uint16, _ uint32, m []byte) {
			switch typ {
			case msgPacket:
				if queue, id, ok := parsePacket(m); ok {
					d.onPacket(queue, id, now)
				}
			case unix.NLMSG_ERROR:
				d.onError(m)
			}
		})
	}
}

// release queues a batch verdict for every queue's packets due within its
// slack, and returns when the next held packet should be released (ok false
// if none is held).
func (d *delayer) release(now time.Duration) (next time.Duration, ok bool) {
	for _, q := range d.queues {
		if last, count := q.popDue(now+q.slack, now); count > 0 {
			d.nfq.out = appendVerdict(d.nfq.out, msgVerdictBatch, q.rule.Queue, last)
		}
		if at, held := q.wakeAt(); held && (!ok || at < next) {
			next, ok = at, true
		}
	}
	return next, ok
}

// flushVerdicts sends the pending verdicts; a failed write counts against every queue it named.
func (d *delayer) flushVerdicts() {
	out := d.nfq.out
	if err := d.nfq.flush(); err != nil {
		for ; len(out) >= verdictLen; out = out[verdictLen:] {
			if q := d.byNum[uint16(out[nlmsgHdrLen+2])<<8|uint16(out[nlmsgHdrLen+3])]; q != nil {
				q.errs++
			}
		}
	}
}

// loop runs until stop is readable: sleep until a packet arrives or the next
// one falls due, read every waiting packet, release what is due.
func (d *delayer) loop(stop int) error {
	p, err := newPoller(d.nfq.fd, stop)
	if err != nil {
		return err
	}
	defer p.close()
	for {
		now := d.now()
		next, ok := d.release(now)
		d.flushVerdicts()
		if err := p.arm(next, now, ok); err != nil {
			return fmt.Errorf("timer: %w", err)
		}
		ready, err := p.wait()
		if err != nil {
			return fmt.Errorf("wait: %w", err)
		}
		for _, e := range ready {
			switch {
			case int(e.Fd) == stop:
				return nil
			case int(e.Fd) != d.nfq.fd:
			case e.Events&unix.EPOLLERR != 0:
				return fmt.Errorf("netlink socket error (events %#x)", e.Events)
			default:
				if err := d.drain(); err != nil {
					return err
				}
			}
		}
	}
}

// drain reads every packet waiting on the socket, many per system call.
func (d *delayer) drain() error {
	for {
		n, err := d.nfq.recv()
		if err == unix.EAGAIN || err == unix.ENOBUFS {
			return nil // ENOBUFS: the kernel dropped messages (NETLINK_NO_ENOBUFS normally prevents it)
		}
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		d.receive(n, d.now())
		if n < recvBatch {
			return nil
		}
	}
}

// signalPipe returns a descriptor that becomes readable on SIGTERM or SIGINT,
// for the loop's ppoll, and the signal's name once it has.
func signalPipe() (int, func() string, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return 0, nil, fmt.Errorf("pipe: %w", err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	got := make(chan os.Signal, 1)
	go func() {
		s := <-sigs
		got <- s
		unix.Write(p[1], []byte{1})
	}()
	return p[0], func() string { return (<-got).String() }, nil
}

func run(rules []Rule, maxQueue int, slack time.Duration) error {
	// One goroutine does all the work: a second P would only add threads
	// that wake each other up (see poller).
	runtime.GOMAXPROCS(1)
	stop, signalName, err := signalPipe()
	if err != nil {
		return err
	}
	nfq, err := dialNfq()
	if err != nil {
		return err
	}
	defer nfq.close()
	d := &delayer{nfq: nfq, byNum: map[uint16]*delayQueue{}, epoch: time.Now()}
	for _, r := range rules {
		q := newDelayQueue(r, maxQueue, slack)
		d.queues = append(d.queues, q)
		d.byNum[r.Queue] = q
	}
	for _, q := range d.queues {
		// Packets of a queue bound earlier may arrive while we wait for the kernel's answer.
		early := func(queue uint16, id uint32) { d.onPacket(queue, id, d.now()) }
		if err := nfq.bindQueue(q.rule.Queue, uint32(maxQueue), early); err != nil {
			return fmt.Errorf("queue %d: bind: %w (is another process bound to it?)", q.rule.Queue, err)
		}
	}
	fmt.Printf("ready pid=%d queues=%d\n", os.Getpid(), len(d.queues))
	os.Stdout.Sync()

	loopErr := d.loop(stop)
	for _, q := range d.queues { // accept everything still held
		if last, count := q.popAll(); count > 0 {
			nfq.out = appendVerdict(nfq.out, msgVerdictBatch, q.rule.Queue, last)
		}
	}
	d.flushVerdicts()
	for _, q := range d.queues {
		var lateAvg time.Duration
		if n := q.released; n > 0 {
			lateAvg = q.lateSum / time.Duration(n)
		}
		fmt.Printf("queue=%d delay=%s seen=%d released=%d overflow=%d errors=%d max_held=%d late_avg=%s late_max=%s\n",
			q.rule.Queue, q.rule.Delay, q.seen, q.released, q.overflow, q.errs, q.maxHeld,
			lateAvg.Round(time.Microsecond), q.lateMax.Round(time.Microsecond))
	}
	if d.stray > 0 {
		fmt.Printf("stray=%d (packets of queues not bound here, accepted)\n", d.stray)
	}
	if loopErr != nil {
		return loopErr
	}
	fmt.Printf("exit signal=%s\n", signalName())
	return nil
}
