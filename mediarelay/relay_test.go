package mediarelay

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// phone is a test endpoint: one UDP socket on loopback.
type phone struct {
	t  testing.TB
	c  *net.UDPConn
	ap netip.AddrPort
}

func newPhone(t testing.TB, ip string) *phone {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(ip+":0")))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(1 << 20)
	t.Cleanup(func() { _ = c.Close() })
	return &phone{t: t, c: c, ap: c.LocalAddr().(*net.UDPAddr).AddrPort()}
}

func (p *phone) send(b []byte, to netip.AddrPort) {
	if _, err := p.c.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Error(err)
	}
}

// recv returns the next datagram, or nil after d.
func (p *phone) recv(d time.Duration) ([]byte, netip.AddrPort) {
	_ = p.c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	n, from, err := p.c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil, netip.AddrPort{}
	}
	return buf[:n], from
}

// expectNothing fails if p receives a datagram within d.
func (p *phone) expectNothing(d time.Duration, what string) {
	p.t.Helper()
	if b, from := p.recv(d); b != nil {
		p.t.Fatalf("%s: unexpected %d bytes from %v", what, len(b), from)
	}
}

// rtpPacket builds an RTP packet whose 160-byte payload carries seq and tag.
func rtpPacket(t testing.TB, seq uint16, ts, ssrc uint32, tag byte) []byte {
	payload := make([]byte, 160)
	binary.BigEndian.PutUint16(payload, seq)
	for i := 2; i < len(payload); i++ {
		payload[i] = tag ^ byte(i)
	}
	b, err := (&rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc},
		Payload: payload,
	}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkPacket verifies that b is the intact packet tag sent with seq.
func checkPacket(t testing.TB, b []byte, seq uint16, tag byte) {
	t.Helper()
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		t.Fatalf("seq %d: %v", seq, err)
	}
	if p.SequenceNumber != seq || len(p.Payload) != 160 || binary.BigEndian.Uint16(p.Payload) != seq {
		t.Fatalf("got seq %d (payload %d bytes), want %d", p.SequenceNumber, len(p.Payload), seq)
	}
	for i := 2; i < len(p.Payload); i++ {
		if p.Payload[i] != tag^byte(i) {
			t.Fatalf("seq %d: payload byte %d corrupted", seq, i)
		}
	}
}

func newTestRelay(t testing.TB, cfg Config) *Relay {
	t.Helper()
	r, err := NewRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// newTestStream binds a stream on free loopback ports below the ephemeral
// range, retrying when another test process holds one.
func newTestStream(t testing.TB, r *Relay) *Stream {
	t.Helper()
	for range 50 {
		pa := 20000 + 2*rand.IntN(6000)
		pb := pa + 2 + 2*rand.IntN(100)
		s, err := r.NewStream(netip.AddrPortFrom(loopback, uint16(pa)), netip.AddrPortFrom(loopback, uint16(pb)))
		if err == nil {
			t.Cleanup(s.Close)
			return s
		}
	}
	t.Fatal("no free media ports")
	return nil
}

func rtcpOf(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr(), ap.Port()+1) }

// eventually polls cond for up to 2 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// latch sends one packet each way so both sides are latched, and drains them.
func latch(t testing.TB, s *Stream, pa, pb *phone) {
	t.Helper()
	pa.send(rtpPacket(t, 1000, 0, 0xa, 'a'), s.Local(SideA))
	pb.send(rtpPacket(t, 1000, 0, 0xb, 'b'), s.Local(SideB))
	if b, _ := pb.recv(2 * time.Second); b == nil {
		t.Fatal("latch packet A->B lost")
	}
	if b, _ := pa.recv(2 * time.Second); b == nil {
		t.Fatal("latch packet B->A lost")
	}
}

// TestRelayBothWays: 500 packets each way at once arrive exactly once, in
// order, intact, and the stats agree.
func TestRelayBothWays(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	reg := prometheus.NewRegistry()
	r, err := NewRelay(Config{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := newTestStream(t, r)
	pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)

	const n = 500
	var wg sync.WaitGroup
	recvd := [2][][]byte{}
	for i, p := range []*phone{pa, pb} {
		wg.Go(func() {
			for len(recvd[i]) < n {
				b, _ := p.recv(3 * time.Second)
				if b == nil {
					return
				}
				recvd[i] = append(recvd[i], b)
			}
			// Anything more would be a duplicate.
			if b, _ := p.recv(100 * time.Millisecond); b != nil {
				recvd[i] = append(recvd[i], b)
			}
		})
	}
	for _, dir := range []struct {
		from *phone
		to   netip.AddrPort
		tag  byte
	}{{pa, s.Local(SideA), 'a'}, {pb, s.Local(SideB), 'b'}} {
		wg.Go(func() {
			for i := range n {
				dir.from.send(rtpPacket(t, uint16(i), uint32(i*160), uint32(dir.tag), dir.tag), dir.to)
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()

	for i, tag := range []byte{'b', 'a'} { // pa receives b's packets
		if len(recvd[i]) != n {
			t.Fatalf("phone %d received %d packets, want exactly %d", i, len(recvd[i]), n)
		}
		for seq, b := range recvd[i] {
			checkPacket(t, b, uint16(seq), tag)
		}
	}
	eventually(t, "counters", func() bool { st := s.Stats(); return st.A.Forwarded == n && st.B.Forwarded == n })
	st := s.Stats()
	for _, d := range []DirStats{st.A, st.B} {
		if d.Packets != n || d.Forwarded != n || d.Dropped != 0 || d.Bytes != n*172 || d.Lost != 0 {
			t.Errorf("stats %+v, want %d packets, %d bytes, all forwarded", d, n, n*172)
		}
	}
	if st.A.Latched != pa.ap || st.B.Latched != pb.ap {
		t.Errorf("latched %v, %v; want %v, %v", st.A.Latched, st.B.Latched, pa.ap, pb.ap)
	}
	if got := testutil.ToFloat64(r.metrics.forwarded); got != 2*n {
		t.Errorf("sbc_media_packets_total{result=forwarded} = %v, want %d", got, 2*n)
	}
	if got := testutil.ToFloat64(r.metrics.bytes); got != 2*n*172 {
		t.Errorf("sbc_media_bytes_total = %v, want %d", got, 2*n*172)
	}
	if got := testutil.ToFloat64(r.metrics.streams); got != 1 {
		t.Errorf("sbc_media_streams_active = %v, want 1", got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(r.metrics.streams); got != 0 {
		t.Errorf("sbc_media_streams_active after Close = %v, want 0", got)
	}
}

// TestRelayLossAndJitter: a 5-packet gap shows as Lost 5; timestamps that
// follow the send clock give ~0 jitter, timestamps 20 ms apart sent 1 ms
// apart give ~19 ms.
func TestRelayLossAndJitter(t *testing.T) {
	r := newTestRelay(t, Config{})
	s := newTestStream(t, r)
	pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)

	const n = 200
	var wg sync.WaitGroup
	wg.Go(func() { // A: regular, with a gap of 5 sequence numbers
		start := time.Now()
		for i := range n {
			seq := uint16(i)
			if i >= 100 {
				seq += 5
			}
			ts := uint32(time.Since(start) * 8000 / time.Second)
			pa.send(rtpPacket(t, seq, ts, 1, 'a'), s.Local(SideA))
			time.Sleep(time.Millisecond)
		}
	})
	wg.Go(func() { // B: a burst, timestamps 20 ms apart
		for i := range n {
			pb.send(rtpPacket(t, uint16(i), uint32(i*160), 2, 'b'), s.Local(SideB))
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	eventually(t, "all packets", func() bool {
		st := s.Stats()
		return st.A.Packets == n && st.B.Packets == n
	})
	st := s.Stats()
	if st.A.Lost != 5 || st.B.Lost != 0 {
		t.Errorf("Lost A=%d B=%d, want 5 and 0", st.A.Lost, st.B.Lost)
	}
	if st.A.JitterMs > 3 {
		t.Errorf("regular stream: JitterMs = %.2f, want ~0", st.A.JitterMs)
	}
	if st.B.JitterMs < 10 || st.B.JitterMs > 20 {
		t.Errorf("bursty stream: JitterMs = %.2f, want ~19", st.B.JitterMs)
	}
	t.Logf("jitter regular %.3f ms, bursty %.3f ms", st.A.JitterMs, st.B.JitterMs)
}

// TestRelayClose: no goroutine survives Relay.Close, every port can be bound
// again, and the relay refuses new streams.
func TestRelayClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r, err := NewRelay(Config{BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	var locals []netip.AddrPort
	for range 3 {
		s := newTestStream(t, r)
		locals = append(locals, s.Local(SideA), s.Local(SideB))
		pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
		s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
		s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)
		latch(t, s, pa, pb)
	}
	if r.Streams() != 3 {
		t.Fatalf("Streams = %d, want 3", r.Streams())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if r.Streams() != 0 {
		t.Fatalf("Streams after Close = %d", r.Streams())
	}
	for _, ap := range locals {
		for _, p := range []netip.AddrPort{ap, rtcpOf(ap)} {
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(p))
			if err != nil {
				t.Fatalf("port %v not reusable after Close: %v", p, err)
			}
			_ = c.Close()
		}
	}
	if _, err := r.NewStream(locals[0], locals[1]); !errors.Is(err, ErrRelayClosed) {
		t.Fatalf("NewStream after Close: %v, want ErrRelayClosed", err)
	}
}

func TestStreamCloseIdempotent(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r, err := NewRelay(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := newTestStream(t, r)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(s.Close)
	}
	wg.Wait()
	s.Close()
	if r.Streams() != 0 {
		t.Fatalf("Streams = %d after Close", r.Streams())
	}
}

func TestNewStreamErrors(t *testing.T) {
	r := newTestRelay(t, Config{})
	s := newTestStream(t, r)
	// The same ports again: bind fails, nothing leaks.
	if _, err := r.NewStream(s.Local(SideA), s.Local(SideB)); err == nil {
		t.Fatal("NewStream on ports in use succeeded")
	}
	if r.Streams() != 1 {
		t.Fatalf("Streams = %d", r.Streams())
	}
	for _, ap := range []netip.AddrPort{{}, netip.MustParseAddrPort("127.0.0.1:0"), netip.MustParseAddrPort("127.0.0.1:65535")} {
		if _, err := r.NewStream(ap, s.Local(SideB)); err == nil {
			t.Errorf("NewStream(%v) succeeded", ap)
		}
	}
	for _, cfg := range []Config{{BatchSize: -1}, {BatchSize: maxBatch + 1}, {LatchWindow: -time.Second}} {
		if _, err := NewRelay(cfg); err == nil {
			t.Errorf("NewRelay(%+v) succeeded", cfg)
		}
	}
	// Two relays on one registry share the series instead of failing.
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := NewRelay(Config{Registerer: reg}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestForwardNoAlloc: once latched, a packet through the relay (both socket
// hops and the worker's whole batch path, metrics on) allocates nothing.
// AllocsPerRun counts every goroutine's mallocs, the worker's included.
func TestForwardNoAlloc(t *testing.T) {
	r := newTestRelay(t, Config{Registerer: prometheus.NewRegistry()})
	s := newTestStream(t, r)
	pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)
	latch(t, s, pa, pb)

	pkt := rtpPacket(t, 1, 0, 0xa, 'a')
	buf := make([]byte, 2048)
	to := s.Local(SideA)
	seq := uint16(1)
	_ = pb.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	allocs := testing.AllocsPerRun(500, func() {
		seq++
		binary.BigEndian.PutUint16(pkt[2:4], seq)
		if _, err := pa.c.WriteToUDPAddrPort(pkt, to); err != nil {
			t.Fatal(err)
		}
		if _, _, err := pb.c.ReadFromUDPAddrPort(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per forwarded packet, want 0", allocs)
	}
}

// BenchmarkRelay pushes b.N packets each way through one stream on
// loopback, sender and receiver on their own goroutines, at most window
// packets in flight per direction so the socket buffers never overflow.
// "direct" is the same traffic phone to phone, for the ratio.
func BenchmarkRelay(b *testing.B) {
	for _, mode := range []string{"direct", "relay"} {
		b.Run(mode, func(b *testing.B) {
			pa, pb := newPhone(b, "127.0.0.1"), newPhone(b, "127.0.0.1")
			toA, toB := pa.ap, pb.ap // where each phone sends
			if mode == "relay" {
				r := newTestRelay(b, Config{Registerer: prometheus.NewRegistry()})
				s := newTestStream(b, r)
				s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
				s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)
				latch(b, s, pa, pb)
				toA, toB = s.Local(SideB), s.Local(SideA)
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			benchFlow(b, pa, pb, toB, toA)
			pps := float64(2*b.N) / time.Since(start).Seconds()
			b.ReportMetric(pps, "pkt/s")
		})
	}
}

// benchFlow runs a->b (a sends to toB) and b->a at once.
func benchFlow(b *testing.B, pa, pb *phone, toB, toA netip.AddrPort) {
	const window = 128
	var wg sync.WaitGroup
	for _, d := range []struct {
		from, to *phone
		dst      netip.AddrPort
	}{{pa, pb, toB}, {pb, pa, toA}} {
		tokens := make(chan struct{}, window)
		done := make(chan struct{})
		wg.Go(func() {
			pkt := rtpPacket(b, 0, 0, 1, 'x')
			for i := range b.N {
				select {
				case tokens <- struct{}{}:
				case <-done:
					return
				}
				binary.BigEndian.PutUint16(pkt[2:4], uint16(i))
				if _, err := d.from.c.WriteToUDPAddrPort(pkt, d.dst); err != nil {
					b.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			buf := make([]byte, 2048)
			_ = d.to.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			for i := range b.N {
				if _, _, err := d.to.c.ReadFromUDPAddrPort(buf); err != nil {
					b.Errorf("received %d of %d: %v", i, b.N, err)
					close(done)
					return
				}
				<-tokens
			}
		})
	}
	wg.Wait()
}
