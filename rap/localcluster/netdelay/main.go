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
// It is cheap per packet because one goroutine does everything (delayer.go):
// all queues share one netlink socket, packets are read many per system call,
// the loop sleeps until the next packet is due or more arrive (a timerfd and
// the socket in one epoll set, parked in the Go runtime's poller: poller.go),
// the due packets of every queue are released with one batch verdict per
// queue, all in one write, and nothing is allocated per packet (nfq.go).
//
// Failure mode (fail closed): the iptables rules that feed the queues carry no
// --queue-bypass, so while no netdelay process is bound to a queue the kernel
// drops its packets (the Python side can opt into --queue-bypass). Packets held at the moment the process
// dies are dropped by the kernel (TCP retransmits them); on SIGTERM/SIGINT the
// program accepts every held packet at once before it exits.
//
// On stdout it prints one "ready" line when all queues are bound, and a
// summary line per queue at exit.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
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

func main() {
	var rules ruleList
	maxQueue := flag.Int("max-queue", 4096, "packets each queue may hold (kernel queue length and ring size)")
	slack := flag.Duration("slack", 100*time.Microsecond, "release a packet up to this much early, to centre wake-up lateness (tens of microseconds) on the delay")
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
