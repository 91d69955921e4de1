package main

// The NFQUEUE side of netlink, only as much as a delayer needs: bind queues in
// metadata-only copy mode, read packet ids, send batch verdicts. Written
// against the kernel's uapi headers (linux/netlink.h, linux/netfilter/
// nfnetlink.h and nfnetlink_queue.h); every queue shares one socket, packets
// are read many per system call (recvmmsg) and the verdicts of all queues go
// out in one write, with no allocation per packet.

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	nlmsgHdrLen = 16 // struct nlmsghdr
	nfgenLen    = 4  // struct nfgenmsg
	nlaHdrLen   = 4  // struct nlattr

	nfnlSubsysQueue = 3 // NFNL_SUBSYS_QUEUE

	msgPacket       = nfnlSubsysQueue<<8 | 0 // NFQNL_MSG_PACKET
	msgVerdict      = nfnlSubsysQueue<<8 | 1 // NFQNL_MSG_VERDICT
	msgConfig       = nfnlSubsysQueue<<8 | 2 // NFQNL_MSG_CONFIG
	msgVerdictBatch = nfnlSubsysQueue<<8 | 3 // NFQNL_MSG_VERDICT_BATCH

	attrPacketHdr  = 1 // NFQA_PACKET_HDR: be32 packet_id, be16 hw_protocol, u8 hook
	attrVerdictHdr = 2 // NFQA_VERDICT_HDR: be32 verdict, be32 id

	attrCfgCmd      = 1 // NFQA_CFG_CMD: u8 command, u8 pad, be16 pf
	attrCfgParams   = 2 // NFQA_CFG_PARAMS: be32 copy_range, u8 copy_mode
	attrCfgQueueMax = 3 // NFQA_CFG_QUEUE_MAXLEN: be32
	attrCfgMask     = 4 // NFQA_CFG_MASK: be32
	attrCfgFlags    = 5 // NFQA_CFG_FLAGS: be32

	cfgCmdBind = 1 // NFQNL_CFG_CMD_BIND
	copyMeta   = 1 // NFQNL_COPY_META: the packet's metadata, no payload bytes
	cfgFlagGSO = 4 // NFQA_CFG_F_GSO: take GSO packets whole instead of having the kernel segment them

	nfAccept = 1 // NF_ACCEPT

	verdictLen = nlmsgHdrLen + nfgenLen + nlaHdrLen + 8

	recvBatch   = 64   // datagrams per recvmmsg
	recvBufSize = 1024 // one packet message in COPY_META is ~100 bytes; ids come first, so truncation is harmless
	rcvBufBytes = 8 << 20
)

var native = binary.NativeEndian

// mmsghdr is struct mmsghdr (x/sys has the msghdr but no recvmmsg wrapper).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// nfqConn is one NETLINK_NETFILTER socket that all of a delayer's queues are bound to.
type nfqConn struct {
	fd   int
	seq  uint32
	msgs [recvBatch]mmsghdr
	iovs [recvBatch]unix.Iovec
	bufs [recvBatch][recvBufSize]byte
	out  []byte // verdicts waiting for the next flush
}

func dialNfq() (*nfqConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind netlink socket: %w", err)
	}
	// Room for bursts: a full socket makes the kernel drop the packet. FORCE
	// goes past net.core.rmem_max (root); plain SO_RCVBUF is the fallback.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBufBytes) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBufBytes)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1)
	c := &nfqConn{fd: fd, out: make([]byte, 0, 64*verdictLen)}
	for i := range c.msgs {
		c.iovs[i].Base = &c.bufs[i][0]
		c.iovs[i].SetLen(recvBufSize)
		c.msgs[i].hdr.Iov = &c.iovs[i]
		c.msgs[i].hdr.SetIovlen(1)
	}
	return c, nil
}

func (c *nfqConn) close() { unix.Close(c.fd) }

// appendMsg appends a netlink message header and nfgenmsg for queue; the
// caller appends attributes and then calls finishMsg.
func appendMsg(b []byte, typ, flags uint16, seq uint32, queue uint16) []byte {
	b = native.AppendUint32(b, 0) // length, set by finishMsg
	b = native.AppendUint16(b, typ)
	b = native.AppendUint16(b, flags)
	b = native.AppendUint32(b, seq)
	b = native.AppendUint32(b, 0)                  // port id: the kernel
	b = append(b, unix.AF_UNSPEC, 0)               // nfgen_family, version NFNETLINK_V0
	return binary.BigEndian.AppendUint16(b, queue) // res_id: the queue number
}

func finishMsg(b []byte, start int) []byte {
	native.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

func appendAttr(b []byte, typ uint16, data ...byte) []byte {
	b = native.AppendUint16(b, uint16(nlaHdrLen+len(data)))
	b = native.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// appendVerdict appends an ACCEPT for packet id of queue: for msgVerdictBatch,
// every packet of the queue up to and including id.
func appendVerdict(b []byte, typ uint16, queue uint16, id uint32) []byte {
	start := len(b)
	b = appendMsg(b, typ, unix.NLM_F_REQUEST, 0, queue)
	b = native.AppendUint16(b, nlaHdrLen+8)
	b = native.AppendUint16(b, attrVerdictHdr)
	b = binary.BigEndian.AppendUint32(b, nfAccept)
	b = binary.BigEndian.AppendUint32(b, id)
	return finishMsg(b, start)
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// bindQueue binds queue to this socket: metadata-only copies, GSO packets
// whole, at most maxLen packets held in the kernel. It waits for the kernel's
// answer; packets of queues bound earlier that arrive meanwhile go to onPacket.
func (c *nfqConn) bindQueue(queue uint16, maxLen uint32, onPacket func(queue uint16, id uint32)) error {
	c.seq++
	b := appendMsg(nil, msgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, c.seq, queue)
	b = appendAttr(b, attrCfgCmd, cfgCmdBind, 0, 0, 0)
	b = appendAttr(b, attrCfgParams, append(be32(0), copyMeta)...)
	b = appendAttr(b, attrCfgQueueMax, be32(maxLen)...)
	b = appendAttr(b, attrCfgMask, be32(cfgFlagGSO)...)
	b = appendAttr(b, attrCfgFlags, be32(cfgFlagGSO)...)
	if _, err := unix.Write(c.fd, finishMsg(b, 0)); err != nil {
		return fmt.Errorf("send config: %w", err)
	}
	for {
		n, err := c.recvWait()
		if err != nil {
			return fmt.Errorf("read config answer: %w", err)
		}
		for i := 0; i < n; i++ {
			answered, errno := false, unix.Errno(0)
			c.each(i, func(typ uint16, seq uint32, m []byte) {
				switch {
				case typ == unix.NLMSG_ERROR && seq == c.seq && len(m) >= nlmsgHdrLen+4:
					answered, errno = true, unix.Errno(-int32(native.Uint32(m[nlmsgHdrLen:])))
				case typ == msgPacket:
					if q, id, ok := parsePacket(m); ok {
						onPacket(q, id)
					}
				}
			})
			if answered {
				if errno != 0 {
					return errno
				}
				return nil
			}
		}
	}
}

// recv reads the datagrams waiting, up to recvBatch, without blocking.
func (c *nfqConn) recv() (int, error) {
	return rawRecvmmsg(c.fd, c.msgs[:])
}

// recvWait blocks until at least one datagram is there (only while binding).
func (c *nfqConn) recvWait() (int, error) {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&c.msgs[0])),
			recvBatch, unix.MSG_WAITFORONE, 0, 0) // without it, a blocking recvmmsg waits for a full batch
		if e != unix.EINTR {
			return int(n), errnoErr(e)
		}
	}
}

// each calls fn for every netlink message in datagram i of the last recv.
func (c *nfqConn) each(i int, fn func(typ uint16, seq uint32, m []byte)) {
	d := c.bufs[i][:min(int(c.msgs[i].len), recvBufSize)]
	for len(d) >= nlmsgHdrLen {
		l := int(native.Uint32(d))
		if l < nlmsgHdrLen {
			return
		}
		fn(native.Uint16(d[4:]), native.Uint32(d[8:]), d[:min(l, len(d))])
		if l = (l + 3) &^ 3; l >= len(d) {
			return
		}
		d = d[l:]
	}
}

// parsePacket reads the queue number and packet id of an NFQNL_MSG_PACKET.
func parsePacket(m []byte) (queue uint16, id uint32, ok bool) {
	if len(m) < nlmsgHdrLen+nfgenLen {
		return 0, 0, false
	}
	queue = binary.BigEndian.Uint16(m[nlmsgHdrLen+2:])
	for a := m[nlmsgHdrLen+nfgenLen:]; len(a) >= nlaHdrLen; {
		l := int(native.Uint16(a))
		if l < nlaHdrLen || l > len(a) {
			return 0, 0, false
		}
		if native.Uint16(a[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER) == attrPacketHdr && l >= nlaHdrLen+4 {
			return queue, binary.BigEndian.Uint32(a[nlaHdrLen:]), true
		}
		if l = (l + 3) &^ 3; l >= len(a) {
			break
		}
		a = a[l:]
	}
	return 0, 0, false
}

// flush sends every pending verdict in one write.
func (c *nfqConn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	err := rawWrite(c.fd, c.out)
	c.out = c.out[:0]
	return err
}
