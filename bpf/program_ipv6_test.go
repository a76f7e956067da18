package bpf

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// TestProgramPassesHostileIPv6: IPv6 frames toward an offloaded flow's
// address and port that the program must not forward (an extension header
// before UDP, a fragment, lengths that disagree with the frame, a zero UDP
// checksum, which IPv6 forbids, RFC 8200 8.1, a hop limit of 1) go to the
// stack byte for byte untouched, each counted under its reason, and the
// flow counts none of them.
func TestProgramPassesHostileIPv6(t *testing.T) {
	base := frameSpec{src: car6, dst: sbcExt6, payload: []byte("0123456789abcdef")}
	with := func(f func(*frameSpec)) frameSpec { s := base; f(&s); return s }
	// ext inserts an 8-byte extension header of type typ between the IPv6
	// header and UDP, as a sender would (next header chained to UDP).
	ext := func(typ byte) func([]byte) []byte {
		return func(in []byte) []byte {
			const l3 = 14
			out := append([]byte(nil), in[:l3+40]...)
			out[l3+6] = typ
			hdr := []byte{17, 0, 0, 0, 0, 0, 0, 0}
			if typ == 44 { // fragment: offset 0, more fragments
				hdr = []byte{17, 0, 0, 1, 0, 0, 0, 42}
			}
			out = append(out, hdr...)
			out = append(out, in[l3+40:]...)
			pl := int(out[l3+4])<<8 | int(out[l3+5]) + 8
			out[l3+4], out[l3+5] = byte(pl>>8), byte(pl)
			return out
		}
	}
	cases := []struct {
		name   string
		frame  frameSpec
		mangle func([]byte) []byte
		why    Counter
	}{
		{"hop-by-hop options header", base, ext(0), CounterNotUDP},
		{"routing header", base, ext(43), CounterNotUDP},
		{"destination options header", base, ext(60), CounterNotUDP},
		{"fragment header", base, ext(44), CounterFragment},
		{"payload length beyond frame", with(func(s *frameSpec) { s.ipLenDelta = 8 }), nil, CounterMalformed},
		{"payload length shorter than udp", with(func(s *frameSpec) { s.ipLenDelta = -4 }), nil, CounterMalformed},
		{"udp length too long", with(func(s *frameSpec) { s.udpLenDelta = 2 }), nil, CounterMalformed},
		{"udp length too short", with(func(s *frameSpec) { s.udpLenDelta = -2 }), nil, CounterMalformed},
		{"zero udp checksum", with(func(s *frameSpec) { s.zeroUDPCsum = true }), nil, CounterMalformed},
		{"truncated udp payload", with(func(s *frameSpec) { s.truncate = 14 + 40 + 8 + 4 }), nil, CounterMalformed},
		{"hop limit 1", with(func(s *frameSpec) { s.ttl = 1 }), nil, CounterTTL},
	}
	objs := loadTestObjects(t)
	for _, pc := range progCases {
		for _, c := range cases {
			t.Run(pc.name+"/"+c.name, func(t *testing.T) {
				resetTestObjects(t, objs)
				putTestFlow(t, objs, FlowKey{sbcExt6}, FlowAction{From: car6, Src: sbcInt6, Dst: pbx6, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 1})
				in := c.frame.build()
				if c.mangle != nil {
					in = c.mangle(in)
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
				if pkts, _ := flowStatsOf(t, objs, FlowKey{sbcExt6}); pkts != 0 {
					t.Errorf("flow counted %d packets", pkts)
				}
			})
		}
	}
}

// TestProgramIPv6ChecksumNeverZero: a packet whose rewritten UDP checksum
// comes out as zero must leave with 0xffff (its ones' complement twin):
// over IPv6 a zero checksum means "none", which RFC 8200 8.1 forbids, and
// the receiver would drop the packet.
func TestProgramIPv6ChecksumNeverZero(t *testing.T) {
	act := FlowAction{From: car6, Src: sbcInt6, Dst: pbx6, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 1}
	// Find a 2-byte payload whose checksum after the rewrite (from the
	// SBC's enterprise address and port to the PBX) folds to zero.
	var payload []byte
	for w := range 1 << 16 {
		p := []byte{byte(w >> 8), byte(w)}
		seg := make([]byte, 10)
		binary.BigEndian.PutUint16(seg[0:], act.Src.Port())
		binary.BigEndian.PutUint16(seg[2:], act.Dst.Port())
		binary.BigEndian.PutUint16(seg[4:], 10)
		copy(seg[8:], p)
		if l4ChecksumRaw(act.Src.Addr(), act.Dst.Addr(), seg) == 0 {
			payload = p
			break
		}
	}
	if payload == nil {
		t.Fatal("no payload gives a zero checksum")
	}
	objs := loadTestObjects(t)
	for _, pc := range progCases {
		t.Run(pc.name, func(t *testing.T) {
			resetTestObjects(t, objs)
			putTestFlow(t, objs, FlowKey{sbcExt6}, act)
			ret, out := run(t, pc.prog(objs), frameSpec{src: car6, dst: sbcExt6, payload: payload}.build())
			if ret != pc.redir {
				t.Fatalf("verdict %d, want redirect %d (counters: %v)", ret, pc.redir, countersOf(t, objs))
			}
			got, err := parseFrame(out)
			if err != nil {
				t.Fatalf("output frame: %v (%x)", err, out)
			}
			if got.udpCsum != 0xffff {
				t.Errorf("udp checksum %#04x, want 0xffff (never 0 over IPv6)", got.udpCsum)
			}
		})
	}
}

// l4ChecksumRaw is the UDP checksum over IPv6 before the zero-to-0xffff
// rule: the ones' complement of the folded sum of pseudo header and segment.
func l4ChecksumRaw(src, dst netip.Addr, seg []byte) uint16 {
	a, b := src.As16(), dst.As16()
	var ph []byte
	ph = append(append(ph, a[:]...), b[:]...)
	ph = append(ph, 0, 0, byte(len(seg)>>8), byte(len(seg)), 0, 0, 0, 17)
	return ^fold(sum16(ph) + sum16(seg))
}
