package mediarelay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/edgesbc/edgesbc/internal/ci"
)

// fakeDatapath stands in for bpf.Datapath, which needs root and an
// interface: it records the flow map and serves counters the test sets.
// The kernel program itself is tested in bpf/ and in the lab (test/).
type fakeDatapath struct {
	mu      sync.Mutex
	flows   map[FlowKey]FlowAction
	stats   map[FlowKey]FlowStats
	puts    int
	deletes int
	failPut bool
}

func newFakeDatapath() *fakeDatapath {
	return &fakeDatapath{flows: map[FlowKey]FlowAction{}, stats: map[FlowKey]FlowStats{}}
}

func (f *fakeDatapath) Path() string { return "xdp" }

func (f *fakeDatapath) Put(k FlowKey, a FlowAction) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failPut {
		return errors.New("map full")
	}
	f.flows[k] = a
	f.stats[k] = FlowStats{} // a new flow's counters start at zero
	f.puts++
	return nil
}

func (f *fakeDatapath) Delete(k FlowKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.flows[k]; !ok {
		return errors.New("no such flow")
	}
	delete(f.flows, k)
	delete(f.stats, k)
	f.deletes++
	return nil
}

func (f *fakeDatapath) Stats() (map[FlowKey]FlowStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[FlowKey]FlowStats, len(f.stats))
	for k, v := range f.stats {
		out[k] = v
	}
	return out, nil
}

func (f *fakeDatapath) Flows() (map[FlowKey]FlowAction, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[FlowKey]FlowAction, len(f.flows))
	for k, v := range f.flows {
		out[k] = v
	}
	return out, nil
}

func (f *fakeDatapath) snapshot() map[FlowKey]FlowAction { m, _ := f.Flows(); return m }

func (f *fakeDatapath) count(k FlowKey, packets uint64, last time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.flows[k]; ok {
		f.stats[k] = FlowStats{Packets: packets, Bytes: packets * 172, LastSeen: last}
	}
}

// fakeResolver gives every address the same next hop, or none.
type fakeResolver struct {
	mu  sync.Mutex
	mac net.HardwareAddr
}

func (r *fakeResolver) Resolve(netip.Addr) (NextHop, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mac == nil {
		return NextHop{}, errors.New("no neighbour")
	}
	return NextHop{Ifindex: 7, SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: r.mac}, nil
}

func (r *fakeResolver) set(mac net.HardwareAddr) {
	r.mu.Lock()
	r.mac = mac
	r.mu.Unlock()
}

var macA = net.HardwareAddr{2, 0, 0, 0, 0, 0xaa}

func offloadRelay(t *testing.T, reg prometheus.Registerer) (*Relay, *fakeDatapath, *fakeResolver) {
	t.Helper()
	dp, res := newFakeDatapath(), &fakeResolver{mac: macA}
	r := newTestRelay(t, Config{Datapath: dp, Resolver: res, OffloadTick: 50 * time.Millisecond, Registerer: reg})
	return r, dp, res
}

func waitFlows(t *testing.T, dp *fakeDatapath, n int) map[FlowKey]FlowAction {
	t.Helper()
	var m map[FlowKey]FlowAction
	eventually(t, "kernel flows", func() bool { m = dp.snapshot(); return len(m) == n })
	return m
}

// TestOffloadAfterLatch: nothing goes to the kernel until both sides have
// latched; then both directions of RTP and RTCP, each taken only from the
// sending side's latched source (From) and rewritten to leave from the
// SBC's other-side port toward the other side's latched source.
func TestOffloadAfterLatch(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r, dp, _ := offloadRelay(t, nil)
	defer r.Close() // before the leak check: the offloader must stop
	s := newTestStream(t, r)
	pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)

	pa.send(rtpPacket(t, 1, 0, 0xa, 'a'), s.Local(SideA))
	if b, _ := pb.recv(2 * time.Second); b == nil {
		t.Fatal("A->B lost")
	}
	time.Sleep(150 * time.Millisecond) // three ticks
	if n := len(dp.snapshot()); n != 0 {
		t.Fatalf("%d flows offloaded with only side A latched", n)
	}
	pb.send(rtpPacket(t, 1, 0, 0xb, 'b'), s.Local(SideB))
	if b, _ := pa.recv(2 * time.Second); b == nil {
		t.Fatal("B->A lost")
	}
	m := waitFlows(t, dp, 2)
	want := map[FlowKey]FlowAction{
		{s.Local(SideA)}: {From: pa.ap, Src: s.Local(SideB), Dst: pb.ap, Ifindex: 7},
		{s.Local(SideB)}: {From: pb.ap, Src: s.Local(SideA), Dst: pa.ap, Ifindex: 7},
	}
	for k, w := range want {
		got, ok := m[k]
		if !ok || got.From != w.From || got.Src != w.Src || got.Dst != w.Dst || got.Ifindex != 7 || got.DstMAC.String() != macA.String() {
			t.Fatalf("flow %v = %+v (present %v), want %+v", k, got, ok, w)
		}
	}
	if s.Path() != "xdp" {
		t.Errorf("stream path %q", s.Path())
	}

	// RTCP latches separately and follows.
	pa.send(rtcpRR(t), rtcpOf(s.Local(SideA)))
	pb.send(rtcpRR(t), rtcpOf(s.Local(SideB)))
	m = waitFlows(t, dp, 4)
	if a := m[FlowKey{rtcpOf(s.Local(SideA))}]; a.From != pa.ap || a.Src != rtcpOf(s.Local(SideB)) || a.Dst.Addr() != pb.ap.Addr() {
		t.Fatalf("RTCP A->B flow %+v", a)
	}
	if a := m[FlowKey{rtcpOf(s.Local(SideB))}]; a.From != pb.ap || a.Dst.Addr() != pa.ap.Addr() {
		t.Fatalf("RTCP B->A flow %+v", a)
	}

	s.Close()
	if n := len(dp.snapshot()); n != 0 {
		t.Fatalf("%d flows left after Close", n)
	}
}

// rtcpRR is a minimal RTCP receiver report with no report block.
func rtcpRR(t *testing.T) []byte {
	t.Helper()
	return []byte{0x80, 201, 0, 1, 0, 0, 0, 0xa}
}

// offloaded sets up a stream with both sides latched and its RTP in the
// kernel.
func offloaded(t *testing.T, r *Relay, dp *fakeDatapath) (*Stream, *phone, *phone) {
	t.Helper()
	s := newTestStream(t, r)
	pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)
	latch(t, s, pa, pb)
	waitFlows(t, dp, 2)
	return s, pa, pb
}

// TestOffloadReinviteRemovesAtOnce: a new address for a side (re-INVITE,
// port move, RFC 2543 hold) takes the flows out of the kernel before
// SetRemote returns; once the new source latches they come back.
func TestOffloadReinviteRemovesAtOnce(t *testing.T) {
	r, dp, _ := offloadRelay(t, nil)
	s, pa, _ := offloaded(t, r, dp)
	moved := newPhone(t, "127.0.0.1")
	s.SetRemote(SideB, moved.ap, netip.AddrPort{}, false)
	if n := len(dp.snapshot()); n != 0 {
		t.Fatalf("%d flows still in the kernel after the re-INVITE", n)
	}
	if s.Path() != PathUserSpace {
		t.Fatalf("path %q", s.Path())
	}
	pa.send(rtpPacket(t, 2, 160, 0xa, 'a'), s.Local(SideA))
	if b, _ := moved.recv(2 * time.Second); b == nil {
		t.Fatal("the relay did not take the stream back")
	}
	moved.send(rtpPacket(t, 2, 160, 0xb, 'b'), s.Local(SideB))
	m := waitFlows(t, dp, 2)
	if m[FlowKey{s.Local(SideA)}].Dst != moved.ap {
		t.Fatalf("A->B flow goes to %v, not the moved peer %v", m[FlowKey{s.Local(SideA)}].Dst, moved.ap)
	}
	// The re-latched source is the only one the B->A flow takes.
	if f := m[FlowKey{s.Local(SideB)}].From; f != moved.ap {
		t.Fatalf("B->A flow expects source %v, want the re-latched %v", f, moved.ap)
	}
	if f := m[FlowKey{s.Local(SideA)}].From; f != pa.ap {
		t.Fatalf("A->B flow expects source %v, want %v", f, pa.ap)
	}
	// The same SDP again (a session refresh) keeps the latch and the flows.
	puts := dp.puts
	s.SetRemote(SideB, moved.ap, netip.AddrPort{}, false)
	time.Sleep(120 * time.Millisecond)
	if len(dp.snapshot()) != 2 || dp.puts != puts {
		t.Fatalf("an unchanged SDP reinstalled flows (%d puts, was %d)", dp.puts, puts)
	}
	// Hold with port 0 on one side: out of the kernel.
	s.SetRemote(SideA, netip.AddrPortFrom(pa.ap.Addr(), 0), netip.AddrPort{}, false)
	if n := len(dp.snapshot()); n != 0 {
		t.Fatalf("%d flows after side A went to port 0", n)
	}
}

// TestOffloadUserSpaceAndMux: SetUserSpace keeps a stream out of the
// kernel (SRTP); rtcp-mux on one side only stays in user space too.
func TestOffloadUserSpaceAndMux(t *testing.T) {
	r, dp, _ := offloadRelay(t, nil)
	s, _, _ := offloaded(t, r, dp)
	s.SetUserSpace(true)
	if n := len(dp.snapshot()); n != 0 {
		t.Fatalf("%d flows after SetUserSpace", n)
	}
	time.Sleep(120 * time.Millisecond)
	if n := len(dp.snapshot()); n != 0 {
		t.Fatalf("re-offloaded a user-space stream: %d flows", n)
	}
	s.SetUserSpace(false)
	waitFlows(t, dp, 2)
	s.Close()

	m := newTestStream(t, r)
	pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	m.SetRemote(SideA, pa.ap, pa.ap, false) // rtcp-mux
	m.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)
	latch(t, m, pa, pb)
	time.Sleep(150 * time.Millisecond)
	if n := len(dp.snapshot()); n != 0 {
		t.Fatalf("%d flows for a stream muxed on one side only", n)
	}
}

// TestOffloadNextHop: no neighbour yet keeps the stream in user space
// until one appears; a changed MAC reinstalls the flows.
func TestOffloadNextHop(t *testing.T) {
	r, dp, res := offloadRelay(t, nil)
	res.set(nil)
	s := newTestStream(t, r)
	pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)
	latch(t, s, pa, pb)
	time.Sleep(150 * time.Millisecond)
	if n := len(dp.snapshot()); n != 0 {
		t.Fatalf("%d flows without a next hop", n)
	}
	res.set(macA)
	waitFlows(t, dp, 2)
	// The neighbour entry goes away (collected): the flows keep their MAC.
	res.set(nil)
	time.Sleep(150 * time.Millisecond)
	if m := dp.snapshot(); len(m) != 2 || m[FlowKey{s.Local(SideA)}].DstMAC.String() != macA.String() {
		t.Fatalf("flows after the neighbour entry went: %v", m)
	}
	newMAC := net.HardwareAddr{2, 0, 0, 0, 0, 0xbb}
	res.set(newMAC)
	eventually(t, "flows with the new MAC", func() bool {
		m := dp.snapshot()
		return len(m) == 2 && m[FlowKey{s.Local(SideA)}].DstMAC.String() == newMAC.String()
	})
}

// TestOffloadStatsAndTimeout: the kernel's counters show in the stream's
// stats (and survive the flow's removal), and its last-seen stamps keep
// the stream from idling out; silence in the kernel lets it idle.
func TestOffloadStatsAndTimeout(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, dp, _ := offloadRelay(t, reg)
	s, _, _ := offloaded(t, r, dp)
	before := s.Stats()
	ka, kb := FlowKey{s.Local(SideA)}, FlowKey{s.Local(SideB)}
	time.Sleep(300 * time.Millisecond)
	dp.count(ka, 1000, time.Now())
	dp.count(kb, 400, time.Now())
	eventually(t, "kernel counters in the stats", func() bool {
		st := s.Stats()
		return st.A.Packets == before.A.Packets+1000 && st.B.Packets == before.B.Packets+400
	})
	if idle := s.Idle(); idle > 200*time.Millisecond {
		t.Errorf("idle %v although the kernel saw packets just now", idle)
	}
	st := s.Stats()
	if st.A.Forwarded != before.A.Forwarded+1000 || st.A.Bytes != before.A.Bytes+172000 {
		t.Errorf("A: %+v", st.A)
	}
	flows := r.Flows()
	var kern int
	for _, f := range flows {
		if f.Path == "xdp" {
			kern++
			if f.Local == s.Local(SideA).String() && f.Packets != 1000 {
				t.Errorf("flow %+v: want 1000 packets", f)
			}
		}
	}
	if kern != 2 || len(flows) != 4 {
		t.Errorf("flows %+v: want 2 RTP in xdp, 2 RTCP in userspace", flows)
	}
	if v := testutil.ToFloat64(pathGauge(t, reg, "sbc_media_flows", "xdp")); v != 2 {
		t.Errorf("sbc_media_flows{path=xdp} = %v", v)
	}
	if v := testutil.ToFloat64(pathGauge(t, reg, "sbc_media_path_packets_total", "xdp")); v != 1400 {
		t.Errorf("sbc_media_path_packets_total{path=xdp} = %v", v)
	}
	// The kernel goes silent: the stream idles although it is offloaded.
	time.Sleep(300 * time.Millisecond)
	if idle := s.Idle(); idle < 250*time.Millisecond {
		t.Errorf("idle %v after 300 ms of kernel silence", idle)
	}
	// Removing the flows keeps what they counted.
	s.SetUserSpace(true)
	if st := s.Stats(); st.A.Packets != before.A.Packets+1000 {
		t.Errorf("after removal A.Packets = %d, want %d", st.A.Packets, before.A.Packets+1000)
	}
}

// pathGauge picks one series of a path metric out of the registry.
func pathGauge(t *testing.T, reg *prometheus.Registry, name, path string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == path {
				v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
				return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return v })
			}
		}
	}
	t.Fatalf("%s{path=%q} not found", name, path)
	return nil
}

// TestReconcileFlows: flows pinned by a previous sbcd that no call owns are
// removed; owned ones and those installed meanwhile stay.
func TestReconcileFlows(t *testing.T) {
	r, dp, _ := offloadRelay(t, nil)
	s, _, _ := offloaded(t, r, dp)
	orphan := FlowKey{netip.MustParseAddrPort("127.0.0.1:31000")}
	kept := FlowKey{netip.MustParseAddrPort("127.0.0.1:31002")}
	_ = dp.Put(orphan, FlowAction{})
	_ = dp.Put(kept, FlowAction{})
	owned := r.OwnedFlows()
	if !owned[FlowKey{s.Local(SideA)}] || !owned[FlowKey{s.Local(SideB)}] || len(owned) != 2 {
		t.Fatalf("owned %v", owned)
	}
	owned[kept] = true
	k, rm, err := r.ReconcileFlows(owned)
	if err != nil || k != 3 || rm != 1 {
		t.Fatalf("kept %d removed %d err %v; want 3, 1", k, rm, err)
	}
	m := dp.snapshot()
	if _, ok := m[orphan]; ok || len(m) != 3 {
		t.Fatalf("after reconcile: %v", m)
	}
}

// TestOffloadManyFlows: 10,000 flows (2,500 streams, RTP and RTCP both
// ways) go into the datapath and all come out when the streams close.
func TestOffloadManyFlows(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	r, dp, _ := offloadRelay(t, nil)
	const streams = 2500
	var all []*Stream
	peer := netip.MustParseAddr("127.0.0.2")
	// Fixed ports, so on loopback addresses of their own (on 127.0.0.1 they
	// collided with the ephemeral ports of tests running beside this one),
	// and below the ephemeral range (32768-60999): a socket another test
	// binds to the wildcard address on an ephemeral port would collide on
	// every address.
	aAddr, bAddr := netip.MustParseAddr("127.0.0.41"), netip.MustParseAddr("127.0.0.43")
	for i := range streams {
		a := netip.AddrPortFrom(aAddr, uint16(10000+4*i%20000))
		b := netip.AddrPortFrom(bAddr, uint16(10000+4*i%20000))
		s, err := r.NewStream(a, b)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		all = append(all, s)
		// Latched as if packets had come (no traffic needed for the
		// decision): the SDP address and its RTCP latch.
		for side := range s.sides {
			sd := &s.sides[side]
			rtp := netip.AddrPortFrom(peer, uint16(10000+2*i+side))
			sd.mu.Lock()
			sd.known, sd.sdpRTP, sd.sdpRTCP = true, rtp, rtcpOf(rtp)
			sd.latchRTP, sd.latchRTCP = rtp, rtcpOf(rtp)
			sd.mu.Unlock()
		}
	}
	r.off.poke()
	for deadline := time.Now().Add(20 * time.Second); len(dp.snapshot()) != 4*streams; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d flows installed, want %d", len(dp.snapshot()), 4*streams)
		}
	}
	for _, s := range all {
		s.Close()
	}
	if n := len(dp.snapshot()); n != 0 {
		t.Fatalf("%d flows left after closing every stream", n)
	}
	if !strings.Contains(r.Path(), "xdp") {
		t.Fatal(r.Path())
	}
}

// TestOffloadSRTPStaysInUserSpace: a stream that turns SRTP on for a leg
// leaves the kernel at once (its packets now need a transform) and comes
// back when the leg returns to plain RTP.
func TestOffloadSRTPStaysInUserSpace(t *testing.T) {
	r, dp, _ := offloadRelay(t, nil)
	s, _, _ := offloaded(t, r, dp)
	s.SetSRTPPending(true)
	if n := len(dp.snapshot()); n != 0 {
		t.Fatalf("%d flows in the kernel while SRTP is being negotiated", n)
	}
	time.Sleep(120 * time.Millisecond)
	if n := len(dp.snapshot()); n != 0 {
		t.Fatalf("re-offloaded a stream with SRTP pending: %d flows", n)
	}
	if err := s.SetSRTP(SideA, nil); err != nil {
		t.Fatal(err)
	}
	waitFlows(t, dp, 2)
}

// TestOffloadCrossFamilyStaysInRelay: side A on IPv4, side B on IPv6. The
// relay carries RTP both ways between the families (each side sees only
// its own), and nothing goes to the kernel, whose program rewrites
// addresses in place and cannot translate IPv4 to IPv6.
func TestOffloadCrossFamilyStaysInRelay(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r, dp, _ := offloadRelay(t, nil)
	defer r.Close()
	var s *Stream
	var err error
	for range 50 {
		p := uint16(20000 + 2*rand.IntN(6000))
		if s, err = r.NewStream(netip.AddrPortFrom(loopback, p), netip.MustParseAddrPort(fmt.Sprintf("[::1]:%d", p+2))); err == nil {
			break
		}
	}
	if s == nil {
		ci.Skipf(t, "no stream on 127.0.0.1 and [::1]: %v", err)
	}
	defer s.Close()
	pa, pb := newPhone(t, "127.0.0.1"), newPhone6(t)
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)
	for i := range 5 {
		pa.send(rtpPacket(t, uint16(i), 0, 0xa, 'a'), s.Local(SideA))
		b, from := pb.recv(2 * time.Second)
		if b == nil || from != s.Local(SideB) {
			t.Fatalf("IPv4 -> IPv6 packet %d: %d bytes from %v", i, len(b), from)
		}
		checkPacket(t, b, uint16(i), 'a')
		pb.send(rtpPacket(t, uint16(i), 0, 0xb, 'b'), s.Local(SideB))
		b, from = pa.recv(2 * time.Second)
		if b == nil || from != s.Local(SideA) {
			t.Fatalf("IPv6 -> IPv4 packet %d: %d bytes from %v", i, len(b), from)
		}
		checkPacket(t, b, uint16(i), 'b')
	}
	time.Sleep(150 * time.Millisecond) // three offload ticks after both latched
	if n := len(dp.snapshot()); n != 0 {
		t.Fatalf("%d flows offloaded for a stream that crosses families", n)
	}
	if p := s.Path(); p != PathUserSpace {
		t.Errorf("stream path %q, want %q", p, PathUserSpace)
	}
}
