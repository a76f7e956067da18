package mediarelay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// ErrRelayClosed: NewStream after Relay.Close.
var ErrRelayClosed = errors.New("media relay closed")

// ErrStreamUnavailable: the SBC could not open a call's media sockets (out
// of file descriptors, or a pool port taken by another program). Like an
// empty pool it is the SBC out of media resources, not a fault of the
// offer: the SIP side answers 503.
var ErrStreamUnavailable = errors.New("media stream unavailable")

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
	maxWorkers         = 1024
	defaultLatchWindow = 10 * time.Second
	sockBuffer         = 1 << 20 // SO_RCVBUF/SO_SNDBUF per media socket
)

// Config configures a Relay. The zero value works.
type Config struct {
	Logger      *slog.Logger
	Registerer  prometheus.Registerer // may be nil: no metrics
	BatchSize   int                   // messages per recvmmsg/sendmmsg, default 16
	LatchWindow time.Duration         // NAT mode: how long after SetRemote a foreign source may latch (default 10s)
	Workers     int                   // epoll workers, default runtime.GOMAXPROCS(0)
	// Datapath, when set, takes streams that need no transform into the
	// kernel once both sides latched (offload.go); Resolver finds their
	// next hops and is required with it. OffloadTick: how often kernel
	// counters are read (default 1s).
	Datapath    Datapath
	Resolver    Resolver
	OffloadTick time.Duration
}

// Relay is the user-space RTP/RTCP relay: a set of streams, each with its
// own sockets, served by a fixed pool of epoll workers (worker.go).
type Relay struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	off     *offloader    // nil: user space only
	fwd     atomic.Uint64 // datagrams the user-space relay forwarded
	// keepFlows: streams closed from now on leave their kernel flows in
	// place (KeepKernelFlows).
	keepFlows atomic.Bool

	mu      sync.Mutex
	streams map[*Stream]struct{}
	closed  bool
	workers []*worker // started by the first NewStream

	workerWG sync.WaitGroup
	stopOnce sync.Once
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
	switch {
	case cfg.Workers == 0:
		cfg.Workers = runtime.GOMAXPROCS(0)
	case cfg.Workers < 0 || cfg.Workers > maxWorkers:
		return nil, fmt.Errorf("media relay: Workers %d outside 1-%d", cfg.Workers, maxWorkers)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Datapath != nil && cfg.Resolver == nil {
		return nil, errors.New("media relay: a Datapath needs a Resolver")
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	r := &Relay{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "mediarelay"),
		metrics: m,
		streams: make(map[*Stream]struct{}),
	}
	if cfg.Datapath != nil {
		r.off = newOffloader(r, cfg.Datapath, cfg.Resolver, cfg.OffloadTick)
		go r.off.run()
	}
	if err := registerPathMetrics(cfg.Registerer, r); err != nil {
		if r.off != nil {
			r.off.close()
		}
		return nil, err
	}
	return r, nil
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
	if err := r.startWorkers(); err != nil {
		r.mu.Unlock()
		s.Close()
		return nil, err
	}
	// Queued under mu: a Relay.Close that sees the stream queues its
	// removal behind these additions.
	var wg sync.WaitGroup
	var errs [2]error
	for side := range s.workers {
		w := r.pickWorker()
		w.load.Add(1)
		s.workers[side] = w
		wg.Add(1)
		w.submit(workerCmd{add: true, socks: s.socks[side], err: &errs[side], wg: &wg})
	}
	r.streams[s] = struct{}{}
	r.mu.Unlock()
	r.metrics.streamDelta(1)
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Streams is the number of open streams.
func (r *Relay) Streams() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.streams)
}

// Close closes every stream and refuses new ones. It returns after the
// workers have exited.
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
	r.stopOnce.Do(func() {
		if r.off != nil {
			r.off.close()
		}
		r.stopWorkers()
	})
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

// fwdDest is where packets toward a side go: an immutable value swapped
// atomically when the side latches or its SDP changes, so the worker of the
// other side needs no lock to find it.
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

// tsUnits converts a duration to RTP timestamp units at hz, without the
// overflow of d*hz after a few days.
func tsUnits(d time.Duration, hz int) uint32 {
	sec := int64(d / time.Second)
	rem := int64(d % time.Second)
	return uint32(sec*int64(hz) + rem*int64(hz)/int64(time.Second))
}
