package main

import "time"

type held struct {
	id  uint32
	due time.Duration // on the program's monotonic clock (see delayer.now)
}

// delayQueue is one bound NFQUEUE queue and the packets it holds, in arrival
// order. Every packet of a queue waits the same delay, so arrival order is
// also due order: the ring's head is always the next packet to release.
// It is used by one goroutine only (the delayer's loop), so it has no locks.
type delayQueue struct {
	rule  Rule
	slack time.Duration

	ring []held
	head int
	n    int

	seen, released, overflow, errs uint64
	maxHeld                        int
	lateSum, lateMax               time.Duration // release time minus due time, over released packets
}

func newDelayQueue(rule Rule, maxQueue int, slack time.Duration) *delayQueue {
	if slack > rule.Delay/2 {
		slack = rule.Delay / 2
	}
	return &delayQueue{rule: rule, slack: slack, ring: make([]held, maxQueue)}
}

// push records a packet that arrived at now; false if the ring is full (the
// caller then lets the packet go at once rather than hold unbounded state;
// it cannot happen while the kernel queue is no longer than the ring).
func (q *delayQueue) push(id uint32, now time.Duration) bool {
	q.seen++
	if q.n == len(q.ring) {
		q.overflow++
		return false
	}
	q.ring[(q.head+q.n)%len(q.ring)] = held{id: id, due: now + q.rule.Delay}
	q.n++
	if q.n > q.maxHeld {
		q.maxHeld = q.n
	}
	return true
}

// popDue removes every packet due by “by“; it returns the last one's id and
// how many. Lateness is measured against wall, the moment of the verdict.
func (q *delayQueue) popDue(by, wall time.Duration) (last uint32, count int) {
	for q.n > 0 {
		h := q.ring[q.head]
		if h.due > by {
			break
		}
		late := wall - h.due
		q.lateSum += late
		if late > q.lateMax {
			q.lateMax = late
		}
		last, count = h.id, count+1
		q.head = (q.head + 1) % len(q.ring)
		q.n--
	}
	q.released += uint64(count)
	return last, count
}

// wakeAt is when the head packet should be released (due minus the slack:
// a wake-up is late by some tens of microseconds, more on a busy machine, so
// releasing up to the slack early centres the error on the delay); ok is
// false when nothing is held.
func (q *delayQueue) wakeAt() (at time.Duration, ok bool) {
	if q.n == 0 {
		return 0, false
	}
	return q.ring[q.head].due - q.slack, true
}

// popAll empties the queue (on exit); the last id and how many.
func (q *delayQueue) popAll() (last uint32, count int) {
	if q.n == 0 {
		return 0, 0
	}
	last, count = q.ring[(q.head+q.n-1)%len(q.ring)].id, q.n
	q.head, q.n = 0, 0
	q.released += uint64(count)
	return last, count
}
