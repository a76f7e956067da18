package mediarelay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// ErrRelayClosed: NewStream after Relay.Close.
var ErrRelayClosed = errors.New("media relay closed")

// errBadStream wraps NewStream's argument errors.
var errBadStream = errors.New("bad media stream address")

// Side names a call leg's media: SideA is the caller's leg.
type Side int

// The two sides of a stream.
const (
	SideA Side = iota
	SideB
)

func (s Side) other() Side { return 1 - s }

func (s Side) String() string {
	if s == SideA {
		return "A"
	}
	return "B"
}

const (
	defaultBatch       = 16
	maxBatch           = 1024
	defaultLatchWindow = 10 * time.Second
	sockBuffer         = 1 << 20 // SO_RCVBUF/SO_SNDBUF per media socket
)

// Config configures a Relay. The zero value works.
type Config struct {
	Logger      *slog.Logger
	Registerer  prometheus.Registerer // may be nil: no metrics
	BatchSize   int                   // messages per recvmmsg/sendmmsg, default 16
	LatchWindow time.Duration         // NAT mode: how long after SetRemote a foreign source may latch (default 10s)
}

// Relay is the user-space RTP/RTCP relay: a set of streams, each with its
// own sockets and reader goroutines.
type Relay struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	streams map[*Stream]struct{}
	closed  bool
}

// NewRelay checks cfg, fills in defaults and registers the metrics.
func NewRelay(cfg Config) (*Relay, error) {
	switch {
	case cfg.BatchSize == 0:
		cfg.BatchSize = defaultBatch
	case cfg.BatchSize < 0 || cfg.BatchSize > maxBatch:
		return nil, fmt.Errorf("media relay: BatchSize %d outside 1-%d", cfg.BatchSize, maxBatch)
	}
	switch {
	case cfg.LatchWindow == 0:
		cfg.LatchWindow = defaultLatchWindow
	case cfg.LatchWindow < 0:
		return nil, fmt.Errorf("media relay: negative LatchWindow %v", cfg.LatchWindow)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Relay{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "mediarelay"),
		metrics: m,
		streams: make(map[*Stream]struct{}),
	}, nil
}

// NewStream binds the SBC's sockets for one media line: on side A the RTP
// socket a.Port() and RTCP a.Port()+1 on a.Addr(), the same for b. Packets
// arriving on A's sockets leave from B's sockets toward side B and vice
// versa. Nothing is forwarded before SetRemote.
func (r *Relay) NewStream(a, b netip.AddrPort) (*Stream, error) {
	for _, ap := range []netip.AddrPort{a, b} {
		if !ap.Addr().IsValid() || ap.Port() == 0 || ap.Port() == 65535 {
			return nil, fmt.Errorf("%w: %v", errBadStream, ap)
		}
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, ErrRelayClosed
	}
	s, err := newStream(r, a, b)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		s.Close()
		return nil, ErrRelayClosed
	}
	r.streams[s] = struct{}{}
	r.mu.Unlock()
	r.metrics.streamDelta(1)
	s.start()
	return s, nil
}

// Streams is the number of open streams.
func (r *Relay) Streams() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.streams)
}

// Close closes every stream and refuses new ones. It returns after all
// reader goroutines have exited.
func (r *Relay) Close() error {
	r.mu.Lock()
	r.closed = true
	all := make([]*Stream, 0, len(r.streams))
	for s := range r.streams {
		all = append(all, s)
	}
	r.mu.Unlock()
	for _, s := range all {
		s.Close()
	}
	return nil
}

func (r *Relay) remove(s *Stream) {
	r.mu.Lock()
	_, ok := r.streams[s]
	delete(r.streams, s)
	r.mu.Unlock()
	if ok {
		r.metrics.streamDelta(-1)
	}
}

// listenMedia binds one media socket with enlarged buffers.
func listenMedia(ap netip.AddrPort) (*net.UDPConn, error) {
	network := "udp4"
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("bind media socket %v: %w", ap, err)
	}
	// Best effort: the kernel caps these at net.core.[rw]mem_max.
	_ = c.SetReadBuffer(sockBuffer)
	_ = c.SetWriteBuffer(sockBuffer)
	return c, nil
}

// The forwarding path. One reader goroutine per socket: it blocks in the
// netpoller (RawConn.Read), takes up to BatchSize datagrams with one
// recvmmsg, decides per datagram under the source side's lock, and sends the
// accepted ones with one sendmmsg per output socket, straight from the
// receive buffers. Everything it touches is allocated in newReader; x/net's
// ipv4.PacketConn.ReadBatch is not used because it allocates a net.UDPAddr
// and its IP for every datagram received.

const (
	maxDatagram = 1500
	sockaddrLen = unix.SizeofSockaddrInet6 // room for either family
)

// sockaddr is a raw struct sockaddr_in or sockaddr_in6.
type sockaddr [sockaddrLen]byte

// encodeSockaddr writes ap for a socket of the given family. ok is false
// when ap cannot be reached from such a socket.
func encodeSockaddr(ap netip.AddrPort, v6 bool) (sa sockaddr, n uint32, ok bool) {
	a := ap.Addr()
	if !v6 {
		if !a.Unmap().Is4() {
			return sa, 0, false
		}
		binary.NativeEndian.PutUint16(sa[0:2], unix.AF_INET)
		binary.BigEndian.PutUint16(sa[2:4], ap.Port())
		ip := a.Unmap().As4()
		copy(sa[4:8], ip[:])
		return sa, unix.SizeofSockaddrInet4, true
	}
	binary.NativeEndian.PutUint16(sa[0:2], unix.AF_INET6)
	binary.BigEndian.PutUint16(sa[2:4], ap.Port())
	ip := a.As16()
	copy(sa[8:24], ip[:])
	return sa, unix.SizeofSockaddrInet6, true
}

// decodeSockaddr reads a source address; v4-mapped addresses are unmapped so
// that they compare equal to the SDP's.
func decodeSockaddr(sa *sockaddr, n uint32) netip.AddrPort {
	port := binary.BigEndian.Uint16(sa[2:4])
	switch binary.NativeEndian.Uint16(sa[0:2]) {
	case unix.AF_INET:
		if n >= unix.SizeofSockaddrInet4 {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte(sa[4:8])), port)
		}
	case unix.AF_INET6:
		if n >= unix.SizeofSockaddrInet6 {
			return netip.AddrPortFrom(netip.AddrFrom16([16]byte(sa[8:24])).Unmap(), port)
		}
	}
	return netip.AddrPort{}
}

// relaySock is one of the SBC's media sockets.
type relaySock struct {
	conn *net.UDPConn
	raw  syscall.RawConn
	v6   bool
}

func newRelaySock(ap netip.AddrPort) (*relaySock, error) {
	c, err := listenMedia(ap)
	if err != nil {
		return nil, err
	}
	raw, err := c.SyscallConn()
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("media socket %v: %w", ap, err)
	}
	v6 := ap.Addr().Is6() && !ap.Addr().Is4In6()
	return &relaySock{conn: c, raw: raw, v6: v6}, nil
}

// fwdDest is where packets toward a side go: an immutable value swapped
// atomically when the side latches or its SDP changes, so readers of the
// other side need no lock to find it.
type fwdDest struct {
	addr netip.AddrPort
	sa   sockaddr
	n    uint32
	out  *relaySock // the SBC socket facing that side to send from
}

func newFwdDest(ap netip.AddrPort, out *relaySock) *fwdDest {
	sa, n, ok := encodeSockaddr(ap, out.v6)
	if !ok {
		return nil
	}
	return &fwdDest{addr: ap, sa: sa, n: n, out: out}
}

// outBatch collects the datagrams of one batch bound for one fwdDest.
type outBatch struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
	n    int
}

func newOutBatch(size int) outBatch {
	b := outBatch{hdrs: make([]unix.Mmsghdr, size), iovs: make([]unix.Iovec, size)}
	for i := range b.hdrs {
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.SetIovlen(1)
	}
	return b
}

func (b *outBatch) add(buf []byte, n int, d *fwdDest) {
	b.iovs[b.n].Base = &buf[0]
	b.iovs[b.n].SetLen(n)
	b.hdrs[b.n].Hdr.Name = &d.sa[0]
	b.hdrs[b.n].Hdr.Namelen = d.n
	b.n++
}

// reader owns one socket's receive loop.
type reader struct {
	s    *Stream
	from Side // the side whose packets arrive on this socket
	rtcp bool // the RTCP socket (RTP+1)
	sk   *relaySock

	bufs  [][]byte
	names []sockaddr
	iovs  []unix.Iovec
	hdrs  []unix.Mmsghdr
	dsts  []*fwdDest  // per datagram: nil = drop
	out   [2]outBatch // toward the RTP and the RTCP destination

	// Method values made once: taking them per call would allocate.
	readF, writeF func(fd uintptr) bool
	rn            int // recvmmsg result
	rerr          unix.Errno
	wpend         []unix.Mmsghdr // what writeF still has to send
	wn            int
	werr          unix.Errno
	warned        bool
}

func newReader(s *Stream, from Side, rtcp bool, sk *relaySock, size int) *reader {
	rd := &reader{
		s: s, from: from, rtcp: rtcp, sk: sk,
		bufs:  make([][]byte, size),
		names: make([]sockaddr, size),
		iovs:  make([]unix.Iovec, size),
		hdrs:  make([]unix.Mmsghdr, size),
		dsts:  make([]*fwdDest, size),
		out:   [2]outBatch{newOutBatch(size), newOutBatch(size)},
	}
	mem := make([]byte, size*maxDatagram)
	for i := range rd.hdrs {
		rd.bufs[i] = mem[i*maxDatagram : (i+1)*maxDatagram : (i+1)*maxDatagram]
		rd.iovs[i].Base = &rd.bufs[i][0]
		rd.iovs[i].SetLen(maxDatagram)
		rd.hdrs[i].Hdr.Iov = &rd.iovs[i]
		rd.hdrs[i].Hdr.SetIovlen(1)
		rd.hdrs[i].Hdr.Name = &rd.names[i][0]
	}
	rd.readF = rd.recv
	rd.writeF = rd.send
	return rd
}

// run is the reader goroutine; it returns when the socket is closed.
func (rd *reader) run() {
	defer rd.s.wg.Done()
	for {
		if err := rd.sk.raw.Read(rd.readF); err != nil {
			return // closed by Stream.Close
		}
		if rd.rerr != 0 {
			rd.warnOnce("receive", rd.rerr)
			continue
		}
		rd.forward(rd.rn)
	}
}

// recv is called by the netpoller with the socket's fd; false means "wait
// until readable".
func (rd *reader) recv(fd uintptr) bool {
	for i := range rd.hdrs {
		rd.hdrs[i].Hdr.Namelen = sockaddrLen
		rd.hdrs[i].Hdr.Flags = 0
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd,
			uintptr(unsafe.Pointer(&rd.hdrs[0])), uintptr(len(rd.hdrs)), 0, 0, 0)
		switch e {
		case 0:
			rd.rn, rd.rerr = int(n), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			rd.rn, rd.rerr = 0, e
			return true
		}
	}
}

// send writes rd.wpend with one sendmmsg; false means "wait until writable".
func (rd *reader) send(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&rd.wpend[0])), uintptr(len(rd.wpend)), 0, 0, 0)
		switch e {
		case 0:
			rd.wn, rd.werr = int(n), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			rd.wn, rd.werr = 0, e
			return true
		}
	}
}

// forward handles one received batch of n datagrams.
func (rd *reader) forward(n int) {
	s := rd.s
	now := time.Since(s.epoch)
	src := &s.sides[rd.from]
	dst := &s.sides[rd.from.other()]
	toRTP, toRTCP := dst.rtpDst.Load(), dst.rtcpDst.Load()
	arrival := tsUnits(now, s.clock())
	var bytes, accepted, rtcpPkts int

	src.mu.Lock()
	for i := range n {
		h := &rd.hdrs[i].Hdr
		size := int(rd.hdrs[i].Len)
		bytes += size
		rd.dsts[i] = nil
		b := rd.bufs[i][:size]
		isRTCP := rd.rtcp || (src.mux && looksLikeRTCP(b))
		if isRTCP {
			rtcpPkts++
		}
		if h.Flags&unix.MSG_TRUNC != 0 {
			continue
		}
		if !src.accept(decodeSockaddr(&rd.names[i], h.Namelen), rd.rtcp, now, s.relay.cfg.LatchWindow, s.socks[rd.from]) {
			continue
		}
		d := toRTP
		if isRTCP {
			if !validRTCP(b) {
				continue
			}
			if rep, ok := parseRTCPReport(b); ok {
				src.remoteFraction = float64(rep.fractionLost) / 256
				src.remoteJitterMs = float64(rep.jitter) * 1000 / float64(s.clock())
			}
			d = toRTCP
		} else {
			hdr, ok := parseRTPHeader(b)
			if !ok {
				continue
			}
			src.rtp.update(hdr, arrival)
		}
		accepted++
		rd.dsts[i] = d
	}
	src.mu.Unlock()

	fwd, fwdBytes := rd.send2(n, toRTP, toRTCP)
	// Forwarded and Dropped go last: once they show a packet, everything
	// else about it is visible too (tests and the media timeout rely on it).
	s.relay.metrics.batch(fwd, n-fwd, fwdBytes)
	if accepted > 0 {
		src.lastSeen.Store(int64(now))
		s.lastPacket.Store(int64(now))
	}
	src.packets.Add(uint64(n))
	src.bytes.Add(uint64(bytes))
	if rtcpPkts > 0 {
		src.rtcpPackets.Add(uint64(rtcpPkts))
	}
	src.forwarded.Add(uint64(fwd))
	src.dropped.Add(uint64(n - fwd))
}

// send2 sends the datagrams marked in rd.dsts, grouped by destination, and
// returns how many left and their bytes.
func (rd *reader) send2(n int, toRTP, toRTCP *fwdDest) (sent, bytes int) {
	for k, d := range [2]*fwdDest{toRTP, toRTCP} {
		if d == nil || (k == 1 && d == toRTP) {
			continue
		}
		ob := &rd.out[k]
		ob.n = 0
		for i := range n {
			if rd.dsts[i] == d {
				ob.add(rd.bufs[i], int(rd.hdrs[i].Len), d)
			}
		}
		if ob.n == 0 {
			continue
		}
		rd.wpend = ob.hdrs[:ob.n]
		for len(rd.wpend) > 0 {
			if err := d.out.raw.Write(rd.writeF); err != nil {
				return sent, bytes // socket closed
			}
			if rd.werr != 0 {
				// The first datagram failed (unreachable, too big): skip it.
				rd.warnOnce("send", rd.werr)
				rd.wpend = rd.wpend[1:]
				continue
			}
			for _, h := range rd.wpend[:rd.wn] {
				bytes += int(h.Len)
			}
			sent += rd.wn
			rd.wpend = rd.wpend[rd.wn:]
		}
	}
	rd.wpend = nil
	return sent, bytes
}

func (rd *reader) warnOnce(op string, e unix.Errno) {
	if rd.warned {
		return
	}
	rd.warned = true
	rd.s.relay.log.Warn("media socket error", "op", op, "side", rd.from.String(),
		"rtcp", rd.rtcp, "local", rd.sk.conn.LocalAddr().String(), "err", e)
}

// tsUnits converts a duration to RTP timestamp units at hz, without the
// overflow of d*hz after a few days.
func tsUnits(d time.Duration, hz int) uint32 {
	sec := int64(d / time.Second)
	rem := int64(d % time.Second)
	return uint32(sec*int64(hz) + rem*int64(hz)/int64(time.Second))
}
