// netdelay holds packets that iptables sends to NFQUEUE queues for a fixed
// one-way delay before letting them go, to emulate inter-node round-trip time
// on a kernel without netem. It runs inside one node's network namespace and
// binds one queue per destination node:
//
//	netdelay --rule queue=101,delay=20ms --rule queue=103,delay=40ms
//
// Every packet of a queue waits the same delay, so releasing packets in
// arrival order (FIFO) is also deadline order: TCP is never reordered. Each
// queue is bounded in the kernel (--max-queue packets); packets beyond that are
// dropped by the kernel, as a full router buffer would. The program copies only
// packet metadata (NFQNL_COPY_META), never payloads, and its own state is a
// fixed-size ring of (packet id, release time) per queue.
//
// Failure mode (fail open): the iptables rules that feed the queues are meant
// to carry --queue-bypass, so while no netdelay process is bound to a queue the
// kernel accepts its packets undelayed. Packets held at the moment the process
// dies are dropped by the kernel (TCP retransmits them); on SIGTERM/SIGINT the
// program accepts every held packet at once before it exits.
//
// On stdout it prints one "ready" line when all queues are bound, and a
// summary line per queue at exit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
)

// Rule is one queue and its one-way delay.
type Rule struct {
	Queue uint16
	Delay time.Duration
}

type ruleList []Rule

func (r *ruleList) String() string {
	parts := make([]string, len(*r))
	for i, x := range *r {
		parts[i] = fmt.Sprintf("queue=%d,delay=%s", x.Queue, x.Delay)
	}
	return strings.Join(parts, " ")
}

func (r *ruleList) Set(s string) error {
	rule, err := ParseRule(s)
	if err != nil {
		return err
	}
	for _, x := range *r {
		if x.Queue == rule.Queue {
			return fmt.Errorf("queue %d given twice", rule.Queue)
		}
	}
	*r = append(*r, rule)
	return nil
}

// MaxDelay bounds a configured delay: anything longer is a typo, not a network.
const MaxDelay = 10 * time.Second

// ParseRule reads "queue=N,delay=D" (D a Go duration such as 20ms).
func ParseRule(s string) (Rule, error) {
	const format = `want queue=N,delay=D, e.g. queue=101,delay=20ms`
	var rule Rule
	var haveQ, haveD bool
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return rule, fmt.Errorf("rule %q: %q has no '=': %s", s, kv, format)
		}
		switch k {
		case "queue":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return rule, fmt.Errorf("rule %q: queue %q is not a number 0..65535: %s", s, v, format)
			}
			rule.Queue, haveQ = uint16(n), true
		case "delay":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > MaxDelay {
				return rule, fmt.Errorf("rule %q: delay %q is not a duration between 0 and %s: %s", s, v, MaxDelay, format)
			}
			rule.Delay, haveD = d, true
		default:
			return rule, fmt.Errorf("rule %q: unknown key %q: %s", s, k, format)
		}
	}
	if !haveQ || !haveD {
		return rule, fmt.Errorf("rule %q: both queue and delay are required: %s", s, format)
	}
	return rule, nil
}

type held struct {
	id  uint32
	due time.Time
}

// delayQueue is one bound NFQUEUE queue and the packets it holds, in arrival order.
type delayQueue struct {
	rule  Rule
	slack time.Duration
	nf    *nfqueue.Nfqueue

	mu      sync.Mutex
	ring    []held
	head    int
	n       int
	wake    chan struct{}
	lateSum time.Duration // release time minus due time, over released packets (under mu)
	lateMax time.Duration

	seen, released, dropped, errs atomic.Uint64
	maxHeld                       atomic.Int64
}

func newDelayQueue(rule Rule, maxQueue int, slack time.Duration) *delayQueue {
	if slack > rule.Delay/2 {
		slack = rule.Delay / 2
	}
	return &delayQueue{rule: rule, slack: slack, ring: make([]held, maxQueue), wake: make(chan struct{}, 1)}
}

// push records a packet; called from the netlink receive goroutine.
func (q *delayQueue) push(id uint32, now time.Time) {
	q.seen.Add(1)
	q.mu.Lock()
	if q.n == len(q.ring) {
		// Cannot happen while the kernel queue is no longer than the ring;
		// if it does, let the packet go now rather than hold unbounded state.
		q.mu.Unlock()
		q.dropped.Add(1)
		q.verdict(id, nfqueue.NfAccept, false)
		return
	}
	q.ring[(q.head+q.n)%len(q.ring)] = held{id: id, due: now.Add(q.rule.Delay)}
	q.n++
	if int64(q.n) > q.maxHeld.Load() {
		q.maxHeld.Store(int64(q.n))
	}
	wasEmpty := q.n == 1
	q.mu.Unlock()
	if wasEmpty {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// popDue removes every packet due by now; it returns the last one's id, how
// many, and when the next one is due (zero time if none is held). Lateness is
// measured against wall, the moment the verdict is about to be sent.
func (q *delayQueue) popDue(now, wall time.Time) (last uint32, count int, next time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n > 0 {
		h := q.ring[q.head]
		if h.due.After(now) {
			return last, count, h.due
		}
		late := wall.Sub(h.due)
		q.lateSum += late
		if late > q.lateMax {
			q.lateMax = late
		}
		last, count = h.id, count+1
		q.head = (q.head + 1) % len(q.ring)
		q.n--
	}
	return last, count, time.Time{}
}

func (q *delayQueue) verdict(id uint32, v int, batch bool) {
	var err error
	if batch {
		err = q.nf.SetVerdictBatch(id, v)
	} else {
		err = q.nf.SetVerdict(id, v)
	}
	if err != nil {
		q.errs.Add(1)
	}
}

// release runs until ctx ends, accepting packets as they fall due. Packets
// of one queue are released in arrival order; a batch verdict accepts every
// held packet with an id up to the given one, which (FIFO) are exactly the
// popped ones.
func (q *delayQueue) release(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Release what falls due within the slack: the timer below wakes up
		// late by up to about a millisecond, so this centres the error on
		// the configured delay instead of always adding to it.
		now := time.Now()
		last, count, next := q.popDue(now.Add(q.slack), now)
		if count > 0 {
			q.verdict(last, nfqueue.NfAccept, true)
			q.released.Add(uint64(count))
		}
		if next.IsZero() {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
			}
			continue
		}
		timer.Reset(time.Until(next.Add(-q.slack)))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// flush accepts everything still held (on a clean exit).
func (q *delayQueue) flush() {
	q.mu.Lock()
	var last uint32
	count := q.n
	if count > 0 {
		last = q.ring[(q.head+q.n-1)%len(q.ring)].id
		q.n = 0
	}
	q.mu.Unlock()
	if count > 0 {
		q.verdict(last, nfqueue.NfAccept, true)
		q.released.Add(uint64(count))
	}
}

func (q *delayQueue) open(ctx context.Context, maxQueue int) error {
	nf, err := nfqueue.Open(&nfqueue.Config{
		NfQueue:      q.rule.Queue,
		MaxQueueLen:  uint32(maxQueue),
		MaxPacketLen: 0,
		Copymode:     nfqueue.NfQnlCopyMeta,
		// GSO: take segmentation-offloaded packets whole instead of making the
		// kernel segment them first; payloads are never read or changed.
		Flags:        nfqueue.NfQaCfgFlagGSO,
		WriteTimeout: time.Second,
	})
	if err != nil {
		return fmt.Errorf("queue %d: open netlink socket: %w", q.rule.Queue, err)
	}
	q.nf = nf
	_ = nf.SetOption(netlink.NoENOBUFS, true)
	_ = nf.Con.SetReadBuffer(8 << 20)
	hook := func(a nfqueue.Attribute) int {
		if a.PacketID != nil {
			q.push(*a.PacketID, time.Now())
		}
		return 0
	}
	onErr := func(e error) int {
		if ctx.Err() != nil {
			return 1
		}
		q.errs.Add(1)
		return 0 // keep receiving
	}
	if err := nf.RegisterWithErrorFunc(ctx, hook, onErr); err != nil {
		nf.Close()
		return fmt.Errorf("queue %d: bind: %w (is another process bound to it?)", q.rule.Queue, err)
	}
	return nil
}

func run(rules []Rule, maxQueue int, slack time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	queues := make([]*delayQueue, 0, len(rules))
	for _, r := range rules {
		q := newDelayQueue(r, maxQueue, slack)
		if err := q.open(ctx, maxQueue); err != nil {
			cancel()
			for _, o := range queues {
				o.nf.Close()
			}
			return err
		}
		queues = append(queues, q)
	}
	var wg sync.WaitGroup
	for _, q := range queues {
		wg.Add(1)
		go func() { defer wg.Done(); q.release(ctx) }()
	}
	fmt.Printf("ready pid=%d queues=%d\n", os.Getpid(), len(queues))
	os.Stdout.Sync()

	sig := <-sigs
	cancel()
	wg.Wait()
	for _, q := range queues {
		q.flush()
	}
	for _, q := range queues {
		q.nf.Close()
		var lateAvg time.Duration
		if n := q.released.Load(); n > 0 {
			lateAvg = q.lateSum / time.Duration(n)
		}
		fmt.Printf("queue=%d delay=%s seen=%d released=%d overflow=%d errors=%d max_held=%d late_avg=%s late_max=%s\n",
			q.rule.Queue, q.rule.Delay, q.seen.Load(), q.released.Load(), q.dropped.Load(),
			q.errs.Load(), q.maxHeld.Load(), lateAvg.Round(time.Microsecond), q.lateMax.Round(time.Microsecond))
	}
	fmt.Printf("exit signal=%s\n", sig)
	return nil
}

func main() {
	var rules ruleList
	maxQueue := flag.Int("max-queue", 4096, "packets each queue may hold (kernel queue length and ring size)")
	slack := flag.Duration("slack", 500*time.Microsecond, "release a packet up to this much early, to centre timer wake-up lateness on the delay")
	flag.Var(&rules, "rule", "queue=N,delay=D: hold packets of NFQUEUE queue N for D (repeatable)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: netdelay --rule queue=N,delay=D [--rule ...] [--max-queue N] [--slack D]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "netdelay: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if len(rules) == 0 {
		fmt.Fprintln(os.Stderr, "netdelay: at least one --rule queue=N,delay=D is required")
		os.Exit(2)
	}
	if *maxQueue < 1 || *maxQueue > 1<<20 {
		fmt.Fprintln(os.Stderr, "netdelay: --max-queue must be between 1 and 1048576")
		os.Exit(2)
	}
	if *slack < 0 || *slack > 5*time.Millisecond {
		fmt.Fprintln(os.Stderr, "netdelay: --slack must be between 0 and 5ms")
		os.Exit(2)
	}
	if err := run(rules, *maxQueue, *slack); err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) && errno == syscall.EPERM {
			err = fmt.Errorf("%w (needs root / CAP_NET_ADMIN)", err)
		}
		fmt.Fprintln(os.Stderr, "netdelay:", err)
		os.Exit(1)
	}
}
