package main

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
	ms := time.Millisecond
	q := newDelayQueue(Rule{Queue: 1, Delay: 10 * ms}, 4, 0)
	for i := uint32(1); i <= 3; i++ {
		q.push(i, time.Duration(i)*ms)
	}
	if _, n := q.popDue(5*ms, 5*ms); n != 0 {
		t.Fatalf("nothing due yet: n=%d", n)
	}
	if at, ok := q.wakeAt(); !ok || at != 11*ms {
		t.Fatalf("next due at 11ms, got %v %v", at, ok)
	}
	last, n := q.popDue(12*ms, 12*ms)
	if last != 2 || n != 2 {
		t.Fatalf("want ids 1,2: last=%d n=%d", last, n)
	}
	if at, _ := q.wakeAt(); at != 13*ms {
		t.Fatalf("next due at 13ms, got %v", at)
	}
	for i := uint32(4); i <= 6; i++ { // wraps around the ring
		q.push(i, 20*ms)
	}
	if q.push(7, 20*ms) || q.overflow != 1 {
		t.Fatalf("a full ring refuses the packet and counts it")
	}
	last, n = q.popDue(time.Second, time.Second)
	if _, ok := q.wakeAt(); last != 6 || n != 4 || ok {
		t.Fatalf("want 3..6 and nothing left: last=%d n=%d", last, n)
	}
	if q.seen != 7 || q.released != 6 {
		t.Fatalf("seen=%d released=%d", q.seen, q.released)
	}
}

func TestSlackReleasesEarlyAndIsCapped(t *testing.T) {
	ms := time.Millisecond
	q := newDelayQueue(Rule{Queue: 1, Delay: 10 * ms}, 4, 500*time.Microsecond)
	q.push(1, 0)
	if at, _ := q.wakeAt(); at != 10*ms-500*time.Microsecond {
		t.Fatalf("wake at due minus slack, got %v", at)
	}
	if small := newDelayQueue(Rule{Queue: 1, Delay: 200 * time.Microsecond}, 4, ms); small.slack != 100*time.Microsecond {
		t.Fatalf("slack is at most half the delay, got %v", small.slack)
	}
}

// packetMsg is an NFQNL_MSG_PACKET as the kernel sends it in COPY_META mode
// (the attributes after the packet header are only there to be skipped).
func packetMsg(queue uint16, id uint32) []byte {
	b := appendMsg(nil, msgPacket, 0, 0, queue)
	b = appendAttr(b, 9, 0, 0, 0, 7)                                     // NFQA_IFINDEX_INDEV, before the header
	b = appendAttr(b, attrPacketHdr, append(be32(id), 0x08, 0x00, 1)...) // id, hw_protocol, hook
	return finishMsg(b, 0)
}

func TestParsePacket(t *testing.T) {
	q, id, ok := parsePacket(packetMsg(102, 0xdeadbeef))
	if !ok || q != 102 || id != 0xdeadbeef {
		t.Fatalf("got queue=%d id=%#x ok=%v", q, id, ok)
	}
	for _, bad := range [][]byte{nil, packetMsg(1, 1)[:20], packetMsg(1, 1)[:26]} {
		if _, _, ok := parsePacket(bad); ok {
			t.Errorf("%x: want no packet", bad)
		}
	}
}

func TestVerdictBytes(t *testing.T) {
	got := appendVerdict(nil, msgVerdictBatch, 0x0102, 0x0a0b0c0d)
	want := binary.NativeEndian.AppendUint32(nil, verdictLen)
	want = binary.NativeEndian.AppendUint16(want, 3<<8|3) // NFNL_SUBSYS_QUEUE, NFQNL_MSG_VERDICT_BATCH
	want = binary.NativeEndian.AppendUint16(want, unix.NLM_F_REQUEST)
	want = append(want, make([]byte, 8)...)                 // seq, port id
	want = append(want, 0, 0, 0x01, 0x02)                   // AF_UNSPEC, version 0, queue (big endian)
	want = binary.NativeEndian.AppendUint16(want, 12)       // nlattr length
	want = binary.NativeEndian.AppendUint16(want, 2)        // NFQA_VERDICT_HDR
	want = append(want, 0, 0, 0, 1, 0x0a, 0x0b, 0x0c, 0x0d) // NF_ACCEPT, id (big endian)
	if !bytes.Equal(got, want) {
		t.Fatalf("verdict\n got %x\nwant %x", got, want)
	}
}

// fakeDelayer is a delayer whose socket is never used: packets are put in
// its receive buffers by hand, as recvmmsg would.
func fakeDelayer(delay time.Duration) *delayer {
	d := &delayer{nfq: &nfqConn{fd: -1, out: make([]byte, 0, 64*verdictLen)}, byNum: map[uint16]*delayQueue{}}
	q := newDelayQueue(Rule{Queue: 102, Delay: delay}, 4096, 0)
	d.queues, d.byNum[102] = []*delayQueue{q}, q
	return d
}

func (d *delayer) fill(i int, m []byte) {
	copy(d.nfq.bufs[i][:], m)
	d.nfq.msgs[i].len = uint32(len(m))
}

func TestReceiveHoldsThenReleasesInOneBatch(t *testing.T) {
	d := fakeDelayer(10 * time.Millisecond)
	for i := 0; i < 3; i++ {
		d.fill(i, packetMsg(102, uint32(i+1)))
	}
	d.fill(3, packetMsg(7, 99)) // a queue not bound here: accepted at once
	d.receive(4, 0)
	if want := appendVerdict(nil, msgVerdict, 7, 99); !bytes.Equal(d.nfq.out, want) || d.stray != 1 {
		t.Fatalf("stray packet: out=%x stray=%d", d.nfq.out, d.stray)
	}
	d.nfq.out = d.nfq.out[:0]
	if next, ok := d.release(5 * time.Millisecond); !ok || next != 10*time.Millisecond || len(d.nfq.out) != 0 {
		t.Fatalf("nothing due at 5ms: next=%v ok=%v out=%x", next, ok, d.nfq.out)
	}
	if _, ok := d.release(10 * time.Millisecond); ok {
		t.Fatalf("everything is released at 10ms")
	}
	if want := appendVerdict(nil, msgVerdictBatch, 102, 3); !bytes.Equal(d.nfq.out, want) {
		t.Fatalf("one batch verdict up to id 3: got %x", d.nfq.out)
	}
}

// The per-packet path (parse, hold, release, encode the verdict) allocates nothing.
func TestPacketPathDoesNotAllocate(t *testing.T) {
	d := fakeDelayer(0)
	d.fill(0, packetMsg(102, 1))
	allocs := testing.AllocsPerRun(1000, func() {
		d.receive(1, 0)
		d.release(0)
		d.nfq.out = d.nfq.out[:0]
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per packet", allocs)
	}
}

func BenchmarkPacketPath(b *testing.B) {
	d := fakeDelayer(0)
	for i := 0; i < recvBatch; i++ {
		d.fill(i, packetMsg(102, uint32(i)))
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i += recvBatch {
		d.receive(recvBatch, 0)
		d.release(0)
		d.nfq.out = d.nfq.out[:0]
	}
}
