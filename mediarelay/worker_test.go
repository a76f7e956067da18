package mediarelay

import (
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestWorkersConfig(t *testing.T) {
	for _, n := range []int{-1, maxWorkers + 1} {
		if _, err := NewRelay(Config{Workers: n}); err == nil {
			t.Errorf("NewRelay(Workers: %d) succeeded", n)
		}
	}
	r, err := NewRelay(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if r.cfg.Workers != runtime.GOMAXPROCS(0) {
		t.Errorf("default Workers = %d, want GOMAXPROCS %d", r.cfg.Workers, runtime.GOMAXPROCS(0))
	}
	// No stream, no worker: a relay that is never used holds no thread.
	if r.workers != nil {
		t.Error("workers started before the first stream")
	}
	_ = r.Close()
}

// TestWorkerPool: many streams share a fixed set of workers (no goroutine
// per socket), both sides of a stream are spread over the workers, and
// every stream forwards.
func TestWorkerPool(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const workers, streams = 3, 30
	r, err := NewRelay(Config{Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	before := runtime.NumGoroutine()
	ss := make([]*Stream, streams)
	for i := range ss {
		ss[i] = newTestStream(t, r)
	}
	if g := runtime.NumGoroutine() - before; g > workers {
		t.Fatalf("%d goroutines more for %d streams, want at most %d workers", g, streams, workers)
	}
	for _, w := range r.workers {
		if l := w.load.Load(); l != 2*streams/workers {
			t.Errorf("worker load %d, want %d", l, 2*streams/workers)
		}
	}
	for _, s := range ss {
		if s.workers[SideA] == s.workers[SideB] {
			t.Error("both sides of a stream on one worker")
			break
		}
	}
	for _, s := range ss {
		pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
		s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
		s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)
		latch(t, s, pa, pb)
	}
	for _, s := range ss {
		s.Close()
	}
	for _, w := range r.workers {
		if l := w.load.Load(); l != 0 {
			t.Errorf("worker load %d after every stream closed", l)
		}
	}
}

// TestCloseUnderTraffic: streams are closed and opened while packets flow
// through them. Close must not return while a worker may still use the
// stream's descriptors (the numbers are reused at once: a late send would
// go out of another stream's socket, a late event would find no socket);
// the ports can be bound again; the streams left alone lose nothing.
func TestCloseUnderTraffic(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r, err := NewRelay(Config{Workers: 2, BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	type call struct {
		s      *Stream
		pa, pb *phone
	}
	open := func() call {
		c := call{s: newTestStream(t, r), pa: newPhone(t, "127.0.0.1"), pb: newPhone(t, "127.0.0.1")}
		c.s.SetRemote(SideA, c.pa.ap, netip.AddrPort{}, false)
		c.s.SetRemote(SideB, c.pb.ap, netip.AddrPort{}, false)
		return c
	}
	const churn, kept, rounds = 8, 4, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	closed := map[netip.AddrPort]bool{} // ports of the streams closed
	keep := map[netip.AddrPort]bool{}   // ports of the streams left open
	// Streams that are closed under traffic, reopened, closed again.
	for range churn {
		wg.Go(func() {
			for range rounds {
				c := open()
				quit, done := make(chan struct{}), make(chan struct{})
				go func() {
					defer close(done)
					pkt := rtpPacket(t, 1, 0, 0xa, 'a')
					for {
						select {
						case <-quit:
							return
						default:
						}
						// Errors are expected once the stream is closed.
						_, _ = c.pa.c.WriteToUDPAddrPort(pkt, c.s.Local(SideA))
						_, _ = c.pb.c.WriteToUDPAddrPort(pkt, c.s.Local(SideB))
						time.Sleep(50 * time.Microsecond)
					}
				}()
				// Close while the workers are busy with the stream.
				for deadline := time.Now().Add(time.Second); c.s.Stats().A.Packets < 10 && time.Now().Before(deadline); {
					time.Sleep(100 * time.Microsecond)
				}
				c.s.Close()
				close(quit)
				<-done
				mu.Lock()
				for _, ap := range []netip.AddrPort{c.s.Local(SideA), c.s.Local(SideB)} {
					closed[ap], closed[rtcpOf(ap)] = true, true
				}
				mu.Unlock()
			}
		})
	}
	// Streams left alone: every packet arrives, nothing else does.
	for range kept {
		c := open()
		mu.Lock()
		for _, ap := range []netip.AddrPort{c.s.Local(SideA), c.s.Local(SideB)} {
			keep[ap], keep[rtcpOf(ap)] = true, true
		}
		mu.Unlock()
		wg.Go(func() {
			const n = 300
			for i := range n {
				c.pa.send(rtpPacket(t, uint16(i), uint32(i*160), 0xa, 'a'), c.s.Local(SideA))
				if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			for i := range n {
				b, _ := c.pb.recv(2 * time.Second)
				if b == nil {
					t.Errorf("kept stream: %d of %d packets", i, n)
					return
				}
				checkPacket(t, b, uint16(i), 'a')
			}
			c.pb.expectNothing(20*time.Millisecond, "kept stream")
		})
	}
	wg.Wait()
	if r.Streams() != kept {
		t.Fatalf("Streams = %d, want %d", r.Streams(), kept)
	}
	// Every port closed is free again (unless a kept stream took it since).
	for p := range closed {
		if keep[p] {
			continue
		}
		u, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(p))
		if err != nil {
			t.Errorf("port %v not reusable after Close: %v", p, err)
			continue
		}
		_ = u.Close()
	}
}

// TestSocketOptions: the media sockets are non-blocking, close-on-exec and
// have the enlarged buffers (as far as the kernel's limits allow).
func TestSocketOptions(t *testing.T) {
	r := newTestRelay(t, Config{})
	s := newTestStream(t, r)
	sk := s.socks[SideA][0]
	fl, err := unix.FcntlInt(uintptr(sk.fd), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("media socket is blocking (%v)", err)
	}
	if fd, err := unix.FcntlInt(uintptr(sk.fd), unix.F_GETFD, 0); err != nil || fd&unix.FD_CLOEXEC == 0 {
		t.Errorf("media socket without FD_CLOEXEC (%v)", err)
	}
	// The kernel doubles the value and caps it at net.core.rmem_max.
	if n, err := unix.GetsockoptInt(sk.fd, unix.SOL_SOCKET, unix.SO_RCVBUF); err != nil || n < 64<<10 {
		t.Errorf("SO_RCVBUF = %d (%v)", n, err)
	}
}
