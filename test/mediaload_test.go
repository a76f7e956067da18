package test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The media benchmark's traffic generator and sink. Each call has one UDP
// socket in namespace car (203.0.113.10:loadPortBase+i) and one in ent
// (198.51.100.10:loadPortBase+i); each socket both sends its stream toward
// the forwarder under test and receives the other direction's stream.
// Stream 2i goes car -> ent, stream 2i+1 ent -> car. Packets are 172-byte
// RTP (12 header + 160 G.711 payload); the payload starts with the
// measuring window's number and the stream's index, so the sink can count
// every stream's packets and ignore stragglers of an earlier window.
//
// One sender goroutine per side paces every stream of that side from a
// per-stream accumulator (streams are spread over the packet interval, not
// sent in one burst) and sends each socket's due packets with one
// sendmmsg. One receiver goroutine per side waits in epoll on all that
// side's sockets and drains each ready one with recvmmsg. The sockets are
// raw file descriptors outside Go's netpoller, so the generator costs one
// syscall per packet or less.

const (
	loadPortBase = 20000
	loadPktLen   = 172 // 12 RTP header + 160 bytes of G.711 (20 ms)
	loadBatch    = 64  // datagrams per sendmmsg/recvmmsg
)

// loadSide is one namespace's end of all calls.
type loadSide struct {
	ns, ip string
	fds    []int
	epfd   int
}

type mediaLoad struct {
	t        *testing.T
	car, ent loadSide
	// dst[2i] is where car's socket i sends (the forwarder's port facing
	// the carrier), dst[2i+1] where ent's socket i sends; set per path
	// before run.
	dst    []unix.RawSockaddrInet4
	recv   []atomic.Uint32 // per stream, this window
	window atomic.Uint32
	stray  atomic.Uint64 // packets of another window or not ours
	stop   atomic.Bool
	wg     sync.WaitGroup
	seq    []uint16 // per stream, only its side's sender touches it
}

// newMediaLoad opens calls sockets on each side and starts the receivers.
func newMediaLoad(t *testing.T, calls int) *mediaLoad {
	t.Helper()
	l := &mediaLoad{t: t, recv: make([]atomic.Uint32, 2*calls), seq: make([]uint16, 2*calls)}
	l.car = loadSide{ns: "car", ip: carrierHost, epfd: -1}
	l.ent = loadSide{ns: "ent", ip: pbxHost, epfd: -1}
	t.Cleanup(l.close)
	for _, s := range []*loadSide{&l.car, &l.ent} {
		if err := s.open(calls); err != nil {
			t.Fatalf("generator sockets in %s: %v", s.ns, err)
		}
	}
	l.wg.Add(2)
	go l.receive(&l.ent, 0) // ent receives the car -> ent streams (even)
	go l.receive(&l.car, 1)
	return l
}

func (s *loadSide) open(calls int) error {
	ip := netip.MustParseAddr(s.ip).As4()
	return inNetns(s.ns, func() error {
		ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return fmt.Errorf("epoll: %w", err)
		}
		s.epfd = ep
		for i := 0; i < calls; i++ {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("socket: %w", err)
			}
			s.fds = append(s.fds, fd)
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<19)
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 1<<19)
			if err := unix.Bind(fd, &unix.SockaddrInet4{Port: loadPortBase + i, Addr: ip}); err != nil {
				return fmt.Errorf("bind %s:%d: %w", s.ip, loadPortBase+i, err)
			}
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
			if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
				return fmt.Errorf("epoll add: %w", err)
			}
		}
		return nil
	})
}

// setDest sets where call i's two streams are sent: car's socket to
// carTo, ent's socket to entTo.
func setDest(dst []unix.RawSockaddrInet4, i int, carTo, entTo netip.AddrPort) {
	dst[2*i] = rawSockaddr(carTo)
	dst[2*i+1] = rawSockaddr(entTo)
}

func rawSockaddr(ap netip.AddrPort) unix.RawSockaddrInet4 {
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ap.Addr().As4()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	return sa
}

func (l *mediaLoad) close() {
	if l.stop.Swap(true) {
		return
	}
	l.wg.Wait()
	l.car.close()
	l.ent.close()
}

// close closes the side's sockets and its epoll fd.
func (s *loadSide) close() {
	for _, fd := range s.fds {
		unix.Close(fd)
	}
	if s.epfd >= 0 {
		unix.Close(s.epfd)
	}
}

// drain reads side s's ready sockets in recvmmsg batches until stop is
// set, handing each datagram to f (valid only during the call).
func (s *loadSide) drain(stop *atomic.Bool, f func(pkt []byte)) {
	events := make([]unix.EpollEvent, 256)
	bufs := make([][2048]byte, loadBatch)
	iovs := make([]unix.Iovec, loadBatch)
	hdrs := make([]unix.Mmsghdr, loadBatch)
	for i := range hdrs {
		iovs[i].Base = &bufs[i][0]
		iovs[i].SetLen(len(bufs[i]))
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
	}
	for !stop.Load() {
		n, err := unix.EpollWait(s.epfd, events, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		for k := 0; k < n; k++ {
			fd := uintptr(events[k].Fd)
			got, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), loadBatch, unix.MSG_DONTWAIT, 0, 0)
			if e != 0 {
				continue
			}
			for j := 0; j < int(got); j++ {
				f(bufs[j][:hdrs[j].Len])
			}
		}
		// Let packets gather: fewer, fuller recvmmsg calls (a socket's
		// buffer holds far more than 10 ms of its stream).
		if n < len(events) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// receive counts, per stream, the packets of the current window arriving
// on side s (streams of the given parity only).
func (l *mediaLoad) receive(s *loadSide, parity int) {
	defer l.wg.Done()
	s.drain(&l.stop, func(b []byte) {
		if len(b) != loadPktLen || binary.BigEndian.Uint32(b[12:]) != l.window.Load() {
			l.stray.Add(1)
			return
		}
		st := binary.BigEndian.Uint32(b[16:])
		if int(st) >= len(l.recv) || int(st%2) != parity {
			l.stray.Add(1)
			return
		}
		l.recv[st].Add(1)
	})
}

// sendSide paces the streams of the given parity of calls from..from+n-1
// at rate packets per second each for d, and records what it could send
// (sent is indexed by stream).
func (l *mediaLoad) sendSide(s *loadSide, parity, from, n int, rate float64, d, tick time.Duration, win uint32, sent []uint64, eagain *uint64) {
	bufs := make([][loadPktLen]byte, loadBatch)
	iovs := make([]unix.Iovec, loadBatch)
	hdrs := make([]unix.Mmsghdr, loadBatch)
	for i := range bufs {
		b := bufs[i][:]
		b[0], b[1] = 0x80, 0 // RTP v2, PT 0 (PCMU)
		binary.BigEndian.PutUint32(b[12:], win)
		for k := 20; k < loadPktLen; k++ {
			b[k] = 0xd5 // PCMU silence
		}
		iovs[i].Base = &b[0]
		iovs[i].SetLen(loadPktLen)
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
		hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
	}
	start := time.Now()
	for {
		el := time.Since(start)
		last := el >= d
		if last {
			el = d
		}
		for i := from; i < from+n; i++ {
			st := 2*i + parity
			// Stream i's packets are due at (k - i/n)/rate: spread over the interval.
			want := uint64(el.Seconds()*rate + float64(i-from)/float64(n))
			if want <= sent[st] {
				continue
			}
			k := int(want - sent[st])
			if k > loadBatch {
				k = loadBatch
			}
			for j := 0; j < k; j++ {
				b := bufs[j][:]
				seq := l.seq[st]
				l.seq[st]++
				binary.BigEndian.PutUint16(b[2:], seq)
				binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
				binary.BigEndian.PutUint32(b[8:], uint32(st)+1) // SSRC
				binary.BigEndian.PutUint32(b[16:], uint32(st))
				hdrs[j].Hdr.Name = (*byte)(unsafe.Pointer(&l.dst[st]))
			}
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fds[i]), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(k), unix.MSG_DONTWAIT, 0, 0)
			if e != 0 {
				*eagain += uint64(k)
				l.seq[st] -= uint16(k)
				continue
			}
			sent[st] += uint64(r)
			l.seq[st] -= uint16(k - int(r))
		}
		if last {
			return
		}
		time.Sleep(tick)
	}
}

// loadResult is one measuring window.
type loadResult struct {
	calls          int
	rate           float64 // per stream
	dur            time.Duration
	target         uint64 // packets that should have been sent
	sent, received uint64
	streamsHit     int     // streams that lost any packet
	maxStreamLoss  float64 // worst stream's loss, %
	deadStreams    int     // streams that got nothing through
	eagain         uint64  // generator sends refused (socket buffer full)
	stray          uint64
}

func (r loadResult) lost() uint64 {
	if r.received >= r.sent {
		return 0
	}
	return r.sent - r.received
}

func (r loadResult) lossPct() float64 {
	if r.sent == 0 {
		return 100
	}
	return 100 * float64(r.lost()) / float64(r.sent)
}

// pps is the offered rate the generator actually achieved.
func (r loadResult) pps() float64 { return float64(r.sent) / r.dur.Seconds() }

// genShort: the generator could not send at the rate the step asked for.
func (r loadResult) genShort(pps int) bool { return r.pps() < 0.97*float64(pps) }

// run sends both streams of calls from..from+n-1 at rate pps each for d,
// waits for the stragglers, and counts. CPU is measured over the sending
// only (pid: the forwarding process, 0 for none); socket drops over the
// sending and the drain.
func (l *mediaLoad) run(from, n int, rate float64, d, tick time.Duration, pid int) (loadResult, usage) {
	win := l.window.Add(1)
	lo, hi := 2*from, 2*(from+n) // the streams
	for i := lo; i < hi; i++ {
		l.recv[i].Store(0)
	}
	stray0 := l.stray.Load()
	sent := make([]uint64, len(l.recv))
	var eag [2]uint64
	var wg sync.WaitGroup
	s0 := takeSample(pid)
	t0 := time.Now()
	wg.Add(2)
	go func() { defer wg.Done(); l.sendSide(&l.car, 0, from, n, rate, d, tick, win, sent, &eag[0]) }()
	go func() { defer wg.Done(); l.sendSide(&l.ent, 1, from, n, rate, d, tick, win, sent, &eag[1]) }()
	wg.Wait()
	dur := time.Since(t0)
	s1 := takeSample(pid)
	// Drain: until nothing more arrives for 300 ms, at most 2 s.
	var last uint64
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		var tot uint64
		for i := lo; i < hi; i++ {
			tot += uint64(l.recv[i].Load())
		}
		if tot == last {
			break
		}
		last = tot
	}
	s2 := takeSample(0)
	u := between(s0, s1)
	u.sbcRcvbuf, u.sinkRcvbuf, u.softnet = s2.sbcRcvbuf-s0.sbcRcvbuf, s2.sinkRcvbuf-s0.sinkRcvbuf, s2.softnet-s0.softnet
	r := loadResult{calls: n, rate: rate, dur: dur, target: uint64(2 * float64(n) * rate * d.Seconds()), eagain: eag[0] + eag[1], stray: l.stray.Load() - stray0}
	for i := lo; i < hi; i++ {
		got := uint64(l.recv[i].Load())
		r.sent += sent[i]
		r.received += got
		if got < sent[i] {
			r.streamsHit++
			loss := 100 * float64(sent[i]-got) / float64(sent[i])
			r.maxStreamLoss = max(r.maxStreamLoss, loss)
			if got == 0 {
				r.deadStreams++
			}
		}
	}
	return r, u
}

// cpuTicks is a process's user+system time in clock ticks (USER_HZ, 100
// on Linux), from /proc/PID/stat.
func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// After "pid (comm) ": state is field 3, utime 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st, nil
}

const clkTck = 100

// softirqTicks is the machine's softirq time, all CPUs, from /proc/stat
// in clock ticks.
func softirqTicks() uint64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if sc.Scan() {
		x := strings.Fields(sc.Text())
		if len(x) > 7 && x[0] == "cpu" {
			v, _ := strconv.ParseUint(x[7], 10, 64)
			return v
		}
	}
	return 0
}

// udpStats is the Udp line of /proc/net/snmp as seen from namespace ns:
// InErrors and RcvbufErrors count datagrams a full socket buffer dropped.
func udpStats(ns string) map[string]uint64 {
	out := map[string]uint64{}
	_ = inNetns(ns, func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		var names []string
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "Udp: ") {
				continue
			}
			f := strings.Fields(line)[1:]
			if names == nil {
				names = f
				continue
			}
			for i, v := range f {
				if i < len(names) {
					out[names[i]], _ = strconv.ParseUint(v, 10, 64)
				}
			}
		}
		return nil
	})
	return out
}

// softnetDrops is the kernel's per-CPU backlog drops (netdev_max_backlog
// overflow), summed over CPUs, from /proc/net/softnet_stat.
func softnetDrops() uint64 {
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return 0
	}
	var sum uint64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			v, _ := strconv.ParseUint(f[1], 16, 64)
			sum += v
		}
	}
	return sum
}

// sample is the counters around a measuring window.
type sample struct {
	at                    time.Time
	proc, self, softirq   uint64
	sbcRcvbuf, sinkRcvbuf uint64
	softnet               uint64
}

func takeSample(pid int) sample {
	s := sample{at: time.Now(), softirq: softirqTicks(), softnet: softnetDrops()}
	if pid > 0 {
		s.proc, _ = cpuTicks(pid)
	}
	s.self, _ = cpuTicks(os.Getpid())
	s.sbcRcvbuf = udpStats("sbc")["RcvbufErrors"]
	s.sinkRcvbuf = udpStats("car")["RcvbufErrors"] + udpStats("ent")["RcvbufErrors"]
	return s
}

// usage is what happened between two samples, CPU in % of one core.
type usage struct {
	proc, self, softirq            float64
	sbcRcvbuf, sinkRcvbuf, softnet uint64
}

func between(a, b sample) usage {
	secs := b.at.Sub(a.at).Seconds()
	pct := func(x, y uint64) float64 { return 100 * float64(y-x) / clkTck / secs }
	return usage{
		proc: pct(a.proc, b.proc), self: pct(a.self, b.self), softirq: pct(a.softirq, b.softirq),
		sbcRcvbuf: b.sbcRcvbuf - a.sbcRcvbuf, sinkRcvbuf: b.sinkRcvbuf - a.sinkRcvbuf, softnet: b.softnet - a.softnet,
	}
}
