package mediarelay

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The forwarding path. A fixed pool of workers (Config.Workers, default
// GOMAXPROCS), each a goroutine owning one epoll instance. The media sockets
// are raw non-blocking file descriptors outside Go's netpoller; each stream
// side's two sockets are registered, level-triggered (EPOLLIN), with the
// least loaded worker.
//
// On readiness a worker does ONE recvmmsg of up to BatchSize datagrams,
// decides per datagram under the source side's lock, and sends the accepted
// ones with one sendmmsg per output socket straight from the receive
// buffers. Level-triggered epoll reports a socket again while data is
// queued, so there is no recvmmsg probe that ends in EAGAIN. Sends never
// wait: when an output socket's buffer is full the rest of the batch is
// dropped and counted. The buffers belong to the worker, which handles one
// batch at a time, not to the sockets.
//
// A worker never blocks in a system call. Its epoll descriptor is itself
// registered with Go's netpoller (an epoll instance is readable while it
// has ready events): the worker parks there like any goroutine waiting for
// a socket, so an idle worker holds neither a P nor a thread, and then
// takes the events with a non-blocking epoll_wait. Per round that is one
// netpoller wakeup, where a goroutine per socket paid one per packet. (A
// worker blocked in epoll_wait on a locked OS thread was measured too: it
// keeps its P until sysmon retakes it, 20 us to 10 ms later, which starved
// the other goroutines and kept sysmon ticking at 20 us: a third fewer
// packets per second in BenchmarkRelay, 19% more CPU per packet in the
// lab.)
// epoll_wait, recvmmsg and sendmmsg are all non-blocking and go straight
// to the kernel (RawSyscall), without the scheduler's bookkeeping.
//
// Only its worker touches a registered socket, and a worker's epoll set and
// slot table change only between two batches, through its command queue
// (a mutex-guarded slice plus an eventfd in the epoll set): adding a
// stream side, removing one (Stream.Close waits for the acknowledgement
// before it closes the descriptors), stopping.

const (
	epollEvents = 256 // events per epoll_wait
	wakeSlot    = -1  // epoll data of the worker's eventfd
)

// relaySock is one of the SBC's media sockets.
type relaySock struct {
	fd    int
	v6    bool
	local netip.AddrPort
	// Set by newStream before the socket is registered, then read-only.
	s    *Stream
	from Side // the side whose packets arrive on this socket
	rtcp bool // the RTCP socket (RTP+1)
	// Owned by the worker serving the socket.
	slot   int32 // index in worker.socks; -1 when not registered
	warned bool
}

// newRelaySock binds one non-blocking media socket with enlarged buffers.
// Like net.ListenUDP: an IPv6 socket is IPv6-only, a v4-mapped address
// gets an IPv4 socket.
func newRelaySock(ap netip.AddrPort) (*relaySock, error) {
	a := ap.Addr()
	v6 := a.Is6() && !a.Is4In6()
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("media socket %v: %w", ap, os.NewSyscallError("socket", err))
	}
	var sa unix.Sockaddr
	if v6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			_ = unix.Close(fd)
			return nil, fmt.Errorf("media socket %v: %w", ap, os.NewSyscallError("setsockopt", err))
		}
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16(), ZoneId: zoneIndex(a.Zone())}
	} else {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}
	}
	// Best effort: the kernel caps these at net.core.[rw]mem_max.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, sockBuffer)
	// IP_FREEBIND: an HA node re-binds a call's ports on the VIP just
	// before it adds the VIP (restore.go), so the address may not exist yet.
	_ = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_FREEBIND, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sockBuffer)
	if err := unix.Bind(fd, sa); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("bind media socket %v: %w", ap, os.NewSyscallError("bind", err))
	}
	return &relaySock{fd: fd, v6: v6, local: ap, slot: -1}, nil
}

// zoneIndex resolves an IPv6 zone (interface name or number); 0 if none.
func zoneIndex(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	n, _ := strconv.ParseUint(zone, 10, 32)
	return uint32(n)
}

func (sk *relaySock) close() { _ = unix.Close(sk.fd) }

// workerCmd adds a stream side's sockets to a worker or removes them.
type workerCmd struct {
	add   bool
	socks [2]*relaySock
	err   *error          // add: where a registration error goes
	wg    *sync.WaitGroup // Done once applied
	// fn, when set, is all the command is (heartbeat.go): the worker runs
	// it between two batches, outside mu.
	fn func()
}

// worker serves the sockets registered with its epoll instance.
type worker struct {
	r    *Relay
	ep   *os.File        // the epoll instance, in Go's netpoller
	epfd int             // its descriptor
	rc   syscall.RawConn // to wait for ep readable
	evfd int             // eventfd: commands queued or stop requested
	load atomic.Int32    // stream sides served, for pickWorker

	mu     sync.Mutex
	cmds   []workerCmd
	stop   bool          // Relay.Close asked the worker to exit
	exited bool          // run returned: submit applies commands itself
	hb     chan struct{} // the queued heartbeat's ack, closed once run (heartbeat.go)

	// Owned by the worker goroutine (by submit once exited).
	socks  []*relaySock // by slot, the epoll data of each socket
	free   []int32      // free slots
	events []unix.EpollEvent
	nev    int                   // events the last epoll_wait returned
	pollF  func(fd uintptr) bool // w.poll, made once: a method value allocates

	// One batch: receive buffers, per-datagram decision, send batches.
	bufs  [][]byte
	names []sockaddr
	iovs  []unix.Iovec
	hdrs  []unix.Mmsghdr
	used  int         // headers the last recvmmsg may have written
	dsts  []*fwdDest  // per datagram: nil = drop
	out   [2]outBatch // toward the RTP and the RTCP destination
}

func newWorker(r *Relay) (*worker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("media relay: %w", os.NewSyscallError("epoll_create1", err))
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("media relay: %w", os.NewSyscallError("eventfd", err))
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeSlot}
	err = os.NewSyscallError("epoll_ctl", unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev))
	if err == nil {
		// Non-blocking, so that os.NewFile puts it in the netpoller.
		err = os.NewSyscallError("fcntl", unix.SetNonblock(epfd, true))
	}
	if err != nil {
		_ = unix.Close(evfd)
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("media relay: %w", err)
	}
	ep := os.NewFile(uintptr(epfd), "epoll")
	rc, err := ep.SyscallConn()
	if err == nil {
		// ErrNoDeadline if ep did not make it into the netpoller, which
		// run depends on.
		err = ep.SetReadDeadline(time.Time{})
	}
	if err != nil {
		_ = unix.Close(evfd)
		_ = ep.Close()
		return nil, fmt.Errorf("media relay: epoll: %w", err)
	}
	size := r.cfg.BatchSize
	w := &worker{
		r: r, ep: ep, epfd: epfd, rc: rc, evfd: evfd,
		events: make([]unix.EpollEvent, epollEvents),
		bufs:   make([][]byte, size),
		names:  make([]sockaddr, size),
		iovs:   make([]unix.Iovec, size),
		hdrs:   make([]unix.Mmsghdr, size),
		used:   size,
		dsts:   make([]*fwdDest, size),
		out:    [2]outBatch{newOutBatch(size), newOutBatch(size)},
	}
	w.pollF = w.poll
	// Each buffer receives at most maxDatagram; the srtpSlack beyond is
	// room for an SRTP transform done in place.
	const stride = maxDatagram + srtpSlack
	mem := make([]byte, size*stride)
	for i := range w.hdrs {
		w.bufs[i] = mem[i*stride : i*stride+maxDatagram : (i+1)*stride]
		w.iovs[i].Base = &w.bufs[i][0]
		w.iovs[i].SetLen(maxDatagram)
		w.hdrs[i].Hdr.Iov = &w.iovs[i]
		w.hdrs[i].Hdr.SetIovlen(1)
		w.hdrs[i].Hdr.Name = &w.names[i][0]
	}
	return w, nil
}

func (w *worker) closeFDs() {
	_ = unix.Close(w.evfd)
	_ = w.ep.Close()
}

// startWorkers starts the pool once. Called with r.mu held.
func (r *Relay) startWorkers() error {
	if r.workers != nil {
		return nil
	}
	ws := make([]*worker, 0, r.cfg.Workers)
	for range r.cfg.Workers {
		w, err := newWorker(r)
		if err != nil {
			for _, w := range ws {
				w.closeFDs()
			}
			return err
		}
		ws = append(ws, w)
	}
	r.workers = ws
	r.workerWG.Add(len(ws))
	for _, w := range ws {
		go w.run()
	}
	return nil
}

// pickWorker is the worker serving the fewest stream sides. Called with
// r.mu held.
func (r *Relay) pickWorker() *worker {
	best := r.workers[0]
	for _, w := range r.workers[1:] {
		if w.load.Load() < best.load.Load() {
			best = w
		}
	}
	return best
}

// stopWorkers stops the pool (after every stream is closed) and waits for
// the workers to exit.
func (r *Relay) stopWorkers() {
	r.mu.Lock()
	ws := r.workers
	r.mu.Unlock()
	for _, w := range ws {
		w.mu.Lock()
		w.stop = true
		w.wake()
		w.mu.Unlock()
	}
	r.workerWG.Wait()
	for _, w := range ws {
		w.closeFDs()
	}
}

// submit queues c for the worker and wakes it. It never waits for the
// worker: callers wait on c.wg.
func (w *worker) submit(c workerCmd) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.exited {
		w.apply(c, false)
		return
	}
	w.cmds = append(w.cmds, c)
	w.wake()
}

// wake signals the eventfd. Called with w.mu held, so that the descriptor
// is still open (it is closed only after the worker exited).
func (w *worker) wake() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	for {
		if _, err := unix.Write(w.evfd, one[:]); err != unix.EINTR {
			return
		}
	}
}

// commands applies the queued commands; true when the worker must exit.
func (w *worker) commands() bool {
	var b [8]byte
	_, _ = unix.Read(w.evfd, b[:]) // reset; every later submit writes again
	w.mu.Lock()
	var fns []func()
	for i, c := range w.cmds {
		if c.fn != nil {
			fns = append(fns, c.fn)
		} else {
			w.apply(c, true)
		}
		w.cmds[i] = workerCmd{}
	}
	w.cmds = w.cmds[:0]
	if w.stop {
		w.exited = true
	}
	exited := w.exited
	w.mu.Unlock()
	for _, f := range fns {
		f() // outside mu, so that a slow one holds up this worker only
	}
	return exited
}

// apply adds or removes a stream side's sockets. live: the worker still
// runs and its epoll descriptor is open.
func (w *worker) apply(c workerCmd, live bool) {
	if c.fn != nil { // an exited worker (submit): no goroutine of its own to run it
		go c.fn()
		return
	}
	defer c.wg.Done()
	for _, sk := range c.socks {
		switch {
		case c.add && !live:
			*c.err = ErrRelayClosed
			return
		case c.add:
			if err := w.register(sk); err != nil {
				*c.err = err
				return
			}
		case sk.slot >= 0:
			if live {
				_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, sk.fd, nil)
			}
			w.socks[sk.slot] = nil
			w.free = append(w.free, sk.slot)
			sk.slot = -1
		}
	}
}

func (w *worker) register(sk *relaySock) error {
	var slot int32
	if n := len(w.free); n > 0 {
		slot = w.free[n-1]
		w.free = w.free[:n-1]
	} else {
		slot = int32(len(w.socks))
		w.socks = append(w.socks, nil)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: slot}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, sk.fd, &ev); err != nil {
		w.free = append(w.free, slot)
		return fmt.Errorf("media socket %v: %w", sk.local, os.NewSyscallError("epoll_ctl", err))
	}
	w.socks[slot] = sk
	sk.slot = slot
	return nil
}

// run is the worker goroutine; it returns once stopped.
func (w *worker) run() {
	defer w.r.workerWG.Done()
	for {
		if err := w.rc.Read(w.pollF); err != nil {
			// Only Relay.Close closes ep, after this goroutine returned.
			w.r.log.Error("media relay worker stopped", "err", err)
			return
		}
		check := false
		for i := range w.nev {
			slot := w.events[i].Fd
			if slot == wakeSlot {
				check = true
				continue
			}
			if sk := w.socks[slot]; sk != nil { // always, by the close protocol
				w.serve(sk)
			}
		}
		if check && w.commands() {
			return
		}
	}
}

// poll takes the ready events without waiting; false (none) makes run's
// RawConn.Read park the worker in the netpoller until ep is readable.
func (w *worker) poll(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, fd,
			uintptr(unsafe.Pointer(&w.events[0])), uintptr(len(w.events)), 0, 0, 0)
		switch e {
		case 0:
			w.nev = int(n)
			return n > 0
		case unix.EINTR:
			continue
		default:
			// EBADF, EFAULT, EINVAL: cannot happen with our own
			// descriptor and buffer. Wait for the next readiness.
			w.nev = 0
			return false
		}
	}
}

// serve reads one batch from a ready socket and forwards it.
func (w *worker) serve(sk *relaySock) {
	for i := range w.used {
		w.hdrs[i].Hdr.Namelen = sockaddrLen
		w.hdrs[i].Hdr.Flags = 0
	}
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(sk.fd),
			uintptr(unsafe.Pointer(&w.hdrs[0])), uintptr(len(w.hdrs)), 0, 0, 0)
		switch e {
		case 0:
			w.used = int(n)
			if n > 0 {
				w.forward(sk, int(n))
			}
			return
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			w.used = len(w.hdrs)
			return // spurious readiness
		default:
			w.used = len(w.hdrs)
			w.warnOnce(sk, "receive", e)
			return
		}
	}
}

// forward handles one received batch of n datagrams from sk.
func (w *worker) forward(sk *relaySock, n int) {
	s := sk.s
	now := time.Since(s.epoch)
	src := &s.sides[sk.from]
	dst := &s.sides[sk.from.other()]
	toRTP, toRTCP := dst.rtpDst.Load(), dst.rtcpDst.Load()
	arrival := tsUnits(now, s.clock())
	pending := s.srtpPending.Load()
	opaque := s.opaque.Load()
	var bytes, accepted, rtcpPkts int

	src.mu.Lock()
	latchRTP, latchRTCP := src.latchRTP, src.latchRTCP
	for i := range n {
		h := &w.hdrs[i].Hdr
		size := int(w.hdrs[i].Len)
		bytes += size
		w.dsts[i] = nil
		b := w.bufs[i][:size]
		var ok bool
		isRTCP := sk.rtcp || (src.mux && !opaque && looksLikeRTCP(b))
		if isRTCP {
			rtcpPkts++
		}
		if h.Flags&unix.MSG_TRUNC != 0 || pending || size == 0 {
			continue
		}
		from := decodeSockaddr(&w.names[i], h.Namelen)
		x := src.x
		if x.active() {
			// Authenticate before the packet may latch its source.
			if !src.admissible(from, sk.rtcp, now, s.relay.cfg.LatchWindow) {
				continue
			}
			if b, ok = x.decrypt(b, isRTCP, &src.srtp, s.relay.metrics); !ok {
				continue
			}
		}
		if !src.accept(from, sk.rtcp, now, s.relay.cfg.LatchWindow, s.socks[sk.from]) {
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
		} else if !opaque {
			// Not RTP on a plain RTP port is forwarded as it came (t38.go);
			// on an SRTP leg it could not have authenticated.
			if hdr, ok := parseRTPHeader(b); ok {
				src.rtp.update(hdr, arrival)
			}
		}
		if x.active() {
			if b, ok = x.encrypt(b, isRTCP, &src.srtp, s.relay.metrics); !ok {
				continue
			}
			w.hdrs[i].Len = uint32(len(b))
			if x.track(isRTCP, b) && src.onLatch != nil {
				src.onLatch() // a ROC or SRTCP mark moved: the record follows
			}
		}
		accepted++
		w.dsts[i] = d
	}
	latched := src.latchRTP != latchRTP || src.latchRTCP != latchRTCP
	src.mu.Unlock()
	if latched && s.relay.off != nil {
		s.relay.off.poke() // may be offloadable now
	}

	fwd, fwdBytes := w.send(sk, n, toRTP, toRTCP)
	s.relay.fwd.Add(uint64(fwd))
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

// send sends the datagrams marked in w.dsts, grouped by destination, with
// one non-blocking sendmmsg per destination, and returns how many left and
// their bytes. A full socket buffer drops the rest of the group.
func (w *worker) send(sk *relaySock, n int, toRTP, toRTCP *fwdDest) (sent, bytes int) {
	for k, d := range [2]*fwdDest{toRTP, toRTCP} {
		if d == nil || (k == 1 && d == toRTP) {
			continue
		}
		ob := &w.out[k]
		ob.n = 0
		for i := range n {
			if w.dsts[i] == d {
				ob.add(w.bufs[i], int(w.hdrs[i].Len), d)
			}
		}
		pend := ob.hdrs[:ob.n]
		for len(pend) > 0 {
			m, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(d.out.fd),
				uintptr(unsafe.Pointer(&pend[0])), uintptr(len(pend)), 0, 0, 0)
			switch {
			case e == unix.EINTR:
				continue
			case e == unix.EAGAIN, e == 0 && m == 0:
				pend = nil // never wait: dropped, counted by the caller
			case e != 0:
				// The first datagram failed (unreachable, too big): skip it.
				w.warnOnce(sk, "send", e)
				pend = pend[1:]
			default:
				for _, h := range pend[:m] {
					bytes += int(h.Len)
				}
				sent += int(m)
				pend = pend[m:]
			}
		}
	}
	return sent, bytes
}

func (w *worker) warnOnce(sk *relaySock, op string, e unix.Errno) {
	if sk.warned {
		return
	}
	sk.warned = true
	w.r.log.Warn("media socket error", "op", op, "side", sk.from.String(),
		"rtcp", sk.rtcp, "local", sk.local.String(), "err", e)
}
