package bpf

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/edgesbc/edgesbc/internal/ci"
)

const (
	xdpPass     = 2
	xdpRedirect = 4
	tcOK        = 0
	tcRedirect  = 7
)

func requireRoot(t testing.TB) {
	t.Helper()
	ci.Root(t, "CAP_BPF, CAP_NET_ADMIN to load BPF programs")
}

// loadTestObjects loads the programs and maps without pinning.
func loadTestObjects(t testing.TB) *datapathObjects {
	t.Helper()
	requireRoot(t)
	spec, err := loadDatapath()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
	}
	var objs datapathObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { objs.Close() })
	resetTestObjects(t, &objs)
	return &objs
}

// resetTestObjects empties the flow maps and zeroes the counters, and
// puts the loopback device in tx_ports (it stands in for the egress).
func resetTestObjects(t testing.TB, objs *datapathObjects) {
	t.Helper()
	var k datapathFlowKey
	for _, m := range []*ebpf.Map{objs.Flows, objs.FlowCounters} {
		for m.NextKey(nil, &k) == nil {
			if err := m.Delete(k); err != nil {
				t.Fatal(err)
			}
		}
	}
	var bk uint32
	for objs.Bans.NextKey(nil, &bk) == nil {
		if err := objs.Bans.Delete(bk); err != nil {
			t.Fatal(err)
		}
	}
	var bk6 [16]byte
	for objs.Bans6.NextKey(nil, &bk6) == nil {
		if err := objs.Bans6.Delete(bk6); err != nil {
			t.Fatal(err)
		}
	}
	if err := objs.BanCount.Update(uint32(0), uint32(0), ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	ncpu, _ := ebpf.PossibleCPU()
	for i := range uint32(counterMax) {
		if err := objs.Counters.Update(i, make([]uint64, ncpu), ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	if err := objs.TxPorts.Update(uint32(1), uint32(1), ebpf.UpdateAny); err != nil {
		t.Fatalf("tx_ports: %v", err)
	}
}

var (
	sbcExt  = netip.MustParseAddrPort("203.0.113.1:40000")
	carrier = netip.MustParseAddrPort("203.0.113.10:5004")
	sbcInt  = netip.MustParseAddrPort("198.51.100.1:41000")
	pbx     = netip.MustParseAddrPort("198.51.100.10:6000")
	sbcExt6 = netip.MustParseAddrPort("[2001:db8:1::1]:40000")
	car6    = netip.MustParseAddrPort("[2001:db8:1::10]:5004")
	sbcInt6 = netip.MustParseAddrPort("[2001:db8:2::1]:41000")
	pbx6    = netip.MustParseAddrPort("[2001:db8:2::10]:6000")
	egrMAC  = net.HardwareAddr{0x02, 0x51, 0, 0, 0, 0x01}
	pbxMAC  = net.HardwareAddr{0x02, 0x51, 0, 0, 0, 0x10}
)

func putTestFlow(t testing.TB, objs *datapathObjects, k FlowKey, a FlowAction) {
	t.Helper()
	key, err := k.marshal()
	if err != nil {
		t.Fatal(err)
	}
	act, err := a.marshal(key.Family)
	if err != nil {
		t.Fatal(err)
	}
	ncpu, _ := ebpf.PossibleCPU()
	if err := objs.FlowCounters.Update(key, make([]datapathFlowStats, ncpu), ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	if err := objs.Flows.Update(key, act, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
}

func flowStatsOf(t testing.TB, objs *datapathObjects, k FlowKey) (pkts, bytes uint64) {
	t.Helper()
	key, _ := k.marshal()
	var vals []datapathFlowStats
	if err := objs.FlowCounters.Lookup(key, &vals); err != nil {
		t.Fatal(err)
	}
	for _, v := range vals {
		pkts += v.Packets
		bytes += v.Bytes
	}
	return
}

func counterOf(t testing.TB, objs *datapathObjects, c Counter) uint64 {
	t.Helper()
	var vals []uint64
	if err := objs.Counters.Lookup(uint32(c), &vals); err != nil {
		t.Fatal(err)
	}
	var s uint64
	for _, v := range vals {
		s += v
	}
	return s
}

type progCase struct {
	name  string
	prog  func(*datapathObjects) *ebpf.Program
	pass  uint32
	redir uint32
}

var progCases = []progCase{
	{"xdp", func(o *datapathObjects) *ebpf.Program { return o.XdpFwd }, xdpPass, xdpRedirect},
	{"tc", func(o *datapathObjects) *ebpf.Program { return o.TcFwd }, tcOK, tcRedirect},
}

func run(t testing.TB, prog *ebpf.Program, in []byte) (uint32, []byte) {
	t.Helper()
	opts := &ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+256)}
	ret, err := prog.Run(opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return ret, opts.DataOut
}

// TestProgramForwards runs both programs on frames that must be forwarded
// and checks every rewritten byte, with checksums recomputed from scratch.
func TestProgramForwards(t *testing.T) {
	payload := bytes.Repeat([]byte("rtp!"), 43) // 172 bytes, like G.711 20 ms
	v4 := FlowAction{From: carrier, Src: sbcInt, Dst: pbx, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 1}
	v6 := FlowAction{From: car6, Src: sbcInt6, Dst: pbx6, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 1}
	v4any := v4
	v4any.From = netip.AddrPort{}
	cases := []struct {
		name    string
		key     FlowKey
		act     FlowAction
		frame   frameSpec
		zeroSum bool
	}{
		{"ipv4", FlowKey{sbcExt}, v4, frameSpec{src: carrier, dst: sbcExt, payload: payload}, false},
		{"ipv4 no expected source: any", FlowKey{sbcExt}, v4any, frameSpec{src: netip.MustParseAddrPort("203.0.113.99:7777"), dst: sbcExt, payload: payload}, false},
		{"ipv4 vlan tagged", FlowKey{sbcExt}, v4, frameSpec{src: carrier, dst: sbcExt, payload: payload, vlan: 42}, false},
		{"ipv4 udp checksum 0 stays 0", FlowKey{sbcExt}, v4, frameSpec{src: carrier, dst: sbcExt, payload: payload, zeroUDPCsum: true}, true},
		{"ipv4 ethernet padding", FlowKey{sbcExt}, v4, frameSpec{src: carrier, dst: sbcExt, payload: []byte{1, 2}, pad: 16}, false},
		{"ipv4 empty payload", FlowKey{sbcExt}, v4, frameSpec{src: carrier, dst: sbcExt}, false},
		{"ipv6", FlowKey{sbcExt6}, v6, frameSpec{src: car6, dst: sbcExt6, payload: payload}, false},
		{"ipv6 vlan tagged", FlowKey{sbcExt6}, v6, frameSpec{src: car6, dst: sbcExt6, payload: payload, vlan: 7}, false},
	}
	objs := loadTestObjects(t)
	for _, pc := range progCases {
		for _, c := range cases {
			t.Run(pc.name+"/"+c.name, func(t *testing.T) {
				resetTestObjects(t, objs)
				putTestFlow(t, objs, c.key, c.act)
				in := c.frame.build()
				inCopy := append([]byte(nil), in...)
				ret, out := run(t, pc.prog(objs), in)
				if ret != pc.redir {
					t.Fatalf("verdict %d, want redirect %d (counters: %v)", ret, pc.redir, countersOf(t, objs))
				}
				got, err := parseFrame(out)
				if err != nil {
					t.Fatalf("output frame: %v\n in %x\nout %x", err, inCopy, out)
				}
				if got.vlan {
					t.Error("VLAN tag left on the forwarded frame")
				}
				wantLen := len(inCopy) - c.frame.pad
				if c.frame.vlan != 0 {
					wantLen -= 4
				}
				if len(out)-c.frame.pad != wantLen {
					t.Errorf("output %d bytes, want %d", len(out)-c.frame.pad, wantLen)
				}
				if !bytes.Equal(got.srcMAC, c.act.SrcMAC) || !bytes.Equal(got.dstMAC, c.act.DstMAC) {
					t.Errorf("MACs %s -> %s, want %s -> %s", got.srcMAC, got.dstMAC, c.act.SrcMAC, c.act.DstMAC)
				}
				if got.src != c.act.Src || got.dst != c.act.Dst {
					t.Errorf("addresses %s -> %s, want %s -> %s", got.src, got.dst, c.act.Src, c.act.Dst)
				}
				if got.ttl != 63 {
					t.Errorf("ttl %d, want 63", got.ttl)
				}
				if c.zeroSum && got.udpCsum != 0 {
					t.Errorf("udp checksum %#04x, want 0 kept", got.udpCsum)
				}
				if !c.zeroSum && got.udpCsum == 0 {
					t.Error("udp checksum became 0")
				}
				if !bytes.Equal(got.payload, c.frame.payload) {
					t.Error("payload changed")
				}
				pkts, b := flowStatsOf(t, objs, c.key)
				if pkts != 1 || b != uint64(len(c.frame.payload)) {
					t.Errorf("flow counters %d packets %d bytes, want 1 and %d", pkts, b, len(c.frame.payload))
				}
				if n := counterOf(t, objs, CounterRedirect); n != 1 {
					t.Errorf("redirect counter %d, want 1", n)
				}
			})
		}
	}
}

func countersOf(t testing.TB, objs *datapathObjects) map[string]uint64 {
	var c Counters
	for i := range c {
		c[i] = counterOf(t, objs, Counter(i))
	}
	return c.Map()
}

// TestProgramPasses: everything that is not a clean UDP packet for a flow
// goes to the stack untouched, counted under its reason.
func TestProgramPasses(t *testing.T) {
	base := frameSpec{src: carrier, dst: sbcExt, payload: []byte("0123456789abcdef")}
	with := func(f func(*frameSpec)) frameSpec { s := base; f(&s); return s }
	cases := []struct {
		name  string
		frame frameSpec
		why   Counter
	}{
		// (BPF_PROG_RUN for tc refuses frames shorter than an IP header, so
		// those two cases run for XDP only; tc sees them from the stack
		// at worst, and the parser is the same code.)
		{"miss other port", with(func(s *frameSpec) { s.dst = netip.AddrPortFrom(sbcExt.Addr(), 40002) }), CounterMiss},
		{"miss other address", with(func(s *frameSpec) { s.dst = netip.AddrPortFrom(sbcInt.Addr(), 40000) }), CounterMiss},
		{"miss ipv6", with(func(s *frameSpec) { s.src, s.dst = car6, sbcExt6 }), CounterMiss},
		{"fragment MF", with(func(s *frameSpec) { s.fragOff = 0x2000 }), CounterFragment},
		{"fragment offset", with(func(s *frameSpec) { s.fragOff = 0x0010 }), CounterFragment},
		{"DF is fine but options are not", with(func(s *frameSpec) { s.fragOff = 0x4000; s.optWords = 1 }), CounterIPOptions},
		{"ip options", with(func(s *frameSpec) { s.optWords = 2 }), CounterIPOptions},
		{"tcp", with(func(s *frameSpec) { s.proto = 6 }), CounterNotUDP},
		{"icmp", with(func(s *frameSpec) { s.proto = 1 }), CounterNotUDP},
		{"short: ethernet only", with(func(s *frameSpec) { s.truncate = 14 }), CounterMalformed},
		{"short: half an ip header", with(func(s *frameSpec) { s.truncate = 24 }), CounterMalformed},
		{"short: no udp header", with(func(s *frameSpec) { s.truncate = 38 }), CounterMalformed},
		{"truncated udp payload", with(func(s *frameSpec) { s.truncate = 50 }), CounterMalformed},
		{"ip length beyond frame", with(func(s *frameSpec) { s.ipLenDelta = 8 }), CounterMalformed},
		{"ip length shorter than udp", with(func(s *frameSpec) { s.ipLenDelta = -4 }), CounterMalformed},
		{"udp length too long", with(func(s *frameSpec) { s.udpLenDelta = 2 }), CounterMalformed},
		{"udp length too short", with(func(s *frameSpec) { s.udpLenDelta = -2 }), CounterMalformed},
		{"ttl 1", with(func(s *frameSpec) { s.ttl = 1 }), CounterTTL},
		{"two vlan tags", with(func(s *frameSpec) { s.vlan = 0x8100 }), CounterNotIP},
	}
	objs := loadTestObjects(t)
	for _, pc := range progCases {
		for _, c := range cases {
			if pc.name == "tc" && c.frame.truncate > 0 && c.frame.truncate < 14+20 {
				// BPF_PROG_RUN refuses tc input shorter than Ethernet +
				// IPv4, so the short-frame cases run on the XDP program only.
				continue
			}
			t.Run(pc.name+"/"+c.name, func(t *testing.T) {
				resetTestObjects(t, objs)
				putTestFlow(t, objs, FlowKey{sbcExt}, FlowAction{Src: sbcInt, Dst: pbx, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 1})
				in := c.frame.build()
				if c.name == "two vlan tags" { // tag, tag(0x8100...), then the IP frame
					in = append(append(append([]byte(nil), in[:12]...), 0x81, 0x00, 0x00, 0x05), in[12:]...)
				}
				inCopy := append([]byte(nil), in...)
				ret, out := run(t, pc.prog(objs), in)
				if ret != pc.pass {
					t.Fatalf("verdict %d, want pass %d", ret, pc.pass)
				}
				if !bytes.Equal(out, inCopy) {
					t.Errorf("frame changed:\n in %x\nout %x", inCopy, out)
				}
				if n := counterOf(t, objs, c.why); n != 1 {
					t.Errorf("counter %s = %d, want 1 (all: %v)", c.why, n, countersOf(t, objs))
				}
				if pkts, _ := flowStatsOf(t, objs, FlowKey{sbcExt}); pkts != 0 {
					t.Errorf("flow counted %d packets", pkts)
				}
			})
		}
	}
}

// TestProgramNonIP: ARP and friends pass.
func TestProgramNonIP(t *testing.T) {
	arp := make([]byte, 42)
	copy(arp, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06})
	for _, pc := range progCases {
		t.Run(pc.name, func(t *testing.T) {
			objs := loadTestObjects(t)
			ret, out := run(t, pc.prog(objs), append([]byte(nil), arp...))
			if ret != pc.pass || !bytes.Equal(out, arp) {
				t.Fatalf("verdict %d (want %d), changed %v", ret, pc.pass, !bytes.Equal(out, arp))
			}
			if n := counterOf(t, objs, CounterNotIP); n != 1 {
				t.Errorf("not_ip counter %d", n)
			}
		})
	}
}

// TestProgramBans: a banned IPv4 or IPv6 source is dropped before
// anything else, an ended ban and other sources are not.
func TestProgramBans(t *testing.T) {
	objs := loadTestObjects(t)
	const xdpDrop, tcShot = 1, 2
	drop := map[string]uint32{"xdp": xdpDrop, "tc": tcShot}
	families := []struct {
		name  string
		key   FlowKey
		act   FlowAction
		src   netip.AddrPort
		other netip.Addr
	}{
		{"ipv4", FlowKey{sbcExt}, FlowAction{Src: sbcInt, Dst: pbx, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 1},
			carrier, netip.MustParseAddr("203.0.113.99")},
		{"ipv6", FlowKey{sbcExt6}, FlowAction{Src: sbcInt6, Dst: pbx6, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 1},
			car6, netip.MustParseAddr("2001:db8:1::99")},
	}
	ban := func(a netip.Addr, end uint64) {
		m, k, err := banKey(objs, a)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Update(k, end, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
		if err := objs.BanCount.Update(uint32(0), uint32(1), ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	for _, pc := range progCases {
		for _, f := range families {
			t.Run(pc.name+"/"+f.name, func(t *testing.T) {
				resetTestObjects(t, objs)
				putTestFlow(t, objs, f.key, f.act)
				hit := frameSpec{src: f.src, dst: f.key.Dst, payload: []byte("0123456789abcdef")}
				other := hit
				other.src = netip.AddrPortFrom(f.other, f.src.Port())
				if ret, _ := run(t, pc.prog(objs), hit.build()); ret != pc.redir {
					t.Fatalf("before the ban: verdict %d, want redirect %d (counters %v)", ret, pc.redir, countersOf(t, objs))
				}
				ban(f.src.Addr(), 0) // until Unban
				if ret, _ := run(t, pc.prog(objs), hit.build()); ret != drop[pc.name] {
					t.Errorf("banned source: verdict %d, want drop %d", ret, drop[pc.name])
				}
				vlan := hit
				vlan.vlan = 9
				if ret, _ := run(t, pc.prog(objs), vlan.build()); ret != drop[pc.name] {
					t.Errorf("banned source, VLAN-tagged: verdict %d, want drop %d", ret, drop[pc.name])
				}
				if ret, _ := run(t, pc.prog(objs), other.build()); ret != pc.redir {
					t.Errorf("other source: verdict %d, want redirect %d", ret, pc.redir)
				}
				ban(f.src.Addr(), 1) // ended long ago (1 ns after boot)
				if ret, _ := run(t, pc.prog(objs), hit.build()); ret != pc.redir {
					t.Errorf("ended ban: verdict %d, want redirect %d", ret, pc.redir)
				}
				if n := counterOf(t, objs, CounterBanned); n != 2 {
					t.Errorf("banned counter %d, want 2", n)
				}
				m, k, _ := banKey(objs, f.src.Addr())
				_ = m.Delete(k)
			})
		}
	}
}

// TestProgramSourceCheck: a flow forwards only packets from its expected
// source (the relay's latched peer); the same destination hit from another
// source address or port goes to the stack untouched, counted as
// src_mismatch, so the relay's anti-hijack latching decides.
func TestProgramSourceCheck(t *testing.T) {
	payload := []byte("0123456789abcdef")
	v4 := FlowAction{From: carrier, Src: sbcInt, Dst: pbx, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 1}
	v6 := FlowAction{From: car6, Src: sbcInt6, Dst: pbx6, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 1}
	ap := netip.AddrPortFrom
	// car6 with only its last byte changed: the whole 16 bytes are compared.
	last := car6.Addr().As16()
	last[15] ^= 1
	cases := []struct {
		name string
		key  FlowKey
		act  FlowAction
		src  netip.AddrPort
	}{
		{"ipv4 wrong address", FlowKey{sbcExt}, v4, ap(netip.MustParseAddr("203.0.113.99"), carrier.Port())},
		{"ipv4 wrong port", FlowKey{sbcExt}, v4, ap(carrier.Addr(), carrier.Port()+1)},
		{"ipv4 wrong address and port", FlowKey{sbcExt}, v4, netip.MustParseAddrPort("198.51.100.250:4000")},
		{"ipv6 wrong address", FlowKey{sbcExt6}, v6, ap(netip.AddrFrom16(last), car6.Port())},
		{"ipv6 wrong port", FlowKey{sbcExt6}, v6, ap(car6.Addr(), car6.Port()^0x100)},
	}
	objs := loadTestObjects(t)
	for _, pc := range progCases {
		for _, c := range cases {
			t.Run(pc.name+"/"+c.name, func(t *testing.T) {
				resetTestObjects(t, objs)
				putTestFlow(t, objs, c.key, c.act)
				for _, vlan := range []uint16{0, 42} {
					in := frameSpec{src: c.src, dst: c.key.Dst, payload: payload, vlan: vlan}.build()
					inCopy := append([]byte(nil), in...)
					ret, out := run(t, pc.prog(objs), in)
					if ret != pc.pass {
						t.Fatalf("vlan %d: verdict %d, want pass %d (counters %v)", vlan, ret, pc.pass, countersOf(t, objs))
					}
					if !bytes.Equal(out[:len(inCopy)], inCopy) {
						t.Errorf("vlan %d: frame changed:\n in %x\nout %x", vlan, inCopy, out)
					}
				}
				if n := counterOf(t, objs, CounterSrcMismatch); n != 2 {
					t.Errorf("src_mismatch counter %d, want 2 (all: %v)", n, countersOf(t, objs))
				}
				if n := counterOf(t, objs, CounterRedirect); n != 0 {
					t.Errorf("redirect counter %d, want 0", n)
				}
				if pkts, _ := flowStatsOf(t, objs, c.key); pkts != 0 {
					t.Errorf("flow counted %d packets", pkts)
				}
				// The expected source right after is still forwarded.
				in := frameSpec{src: c.act.From, dst: c.key.Dst, payload: payload}.build()
				if ret, _ := run(t, pc.prog(objs), in); ret != pc.redir {
					t.Errorf("expected source: verdict %d, want redirect %d", ret, pc.redir)
				}
			})
		}
	}
}
