package bpf

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// modelHit is an independent Go statement of the rules: whether the
// programs must forward frame f for the flow key `key` whose expected
// source is from (zero: any), and where the IP header starts.
func modelHit(f []byte, key, from netip.AddrPort) (l3 int, ok bool) {
	if len(f) < 14 {
		return 0, false
	}
	et := binary.BigEndian.Uint16(f[12:])
	l3 = 14
	if et == 0x8100 || et == 0x88a8 {
		if len(f) < 18 {
			return 0, false
		}
		et = binary.BigEndian.Uint16(f[16:])
		l3 = 18
		if et == 0x8100 || et == 0x88a8 {
			return 0, false
		}
	}
	var src, dst netip.Addr
	var udp []byte
	switch et {
	case 0x0800:
		if len(f) < l3+20 {
			return 0, false
		}
		ip := f[l3:]
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		if ip[0] != 0x45 || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 || ip[9] != 17 ||
			tot < 28 || l3+tot > len(f) || ip[8] <= 1 {
			return 0, false
		}
		udp = ip[20:tot]
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
	case 0x86dd:
		if len(f) < l3+40 {
			return 0, false
		}
		ip := f[l3:]
		pl := int(binary.BigEndian.Uint16(ip[4:]))
		if ip[0]>>4 != 6 || ip[6] != 17 || pl < 8 || l3+40+pl > len(f) || ip[7] <= 1 {
			return 0, false
		}
		udp = ip[40 : 40+pl]
		if binary.BigEndian.Uint16(udp[6:]) == 0 {
			return 0, false
		}
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	default:
		return 0, false
	}
	if int(binary.BigEndian.Uint16(udp[4:])) != len(udp) {
		return 0, false
	}
	if from.IsValid() && netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp[0:])) != from {
		return l3, false
	}
	return l3, netip.AddrPortFrom(dst, binary.BigEndian.Uint16(udp[2:])) == key
}

// residue is the one's complement sum of a checksummed span including its
// checksum (0xffff when the checksum is right). An incremental update must
// keep it as it was, right or wrong. 0 and 0xffff are the same number.
func residue(s uint32) uint16 {
	r := fold(s)
	if r == 0 {
		r = 0xffff
	}
	return r
}

func udpResidue(f []byte, l3 int) (uint16, bool) {
	var ph []byte
	var seg []byte
	if f[l3]>>4 == 4 {
		tot := int(binary.BigEndian.Uint16(f[l3+2:]))
		seg = f[l3+20 : l3+tot]
		ph = append(append(ph, f[l3+12:l3+20]...), 0, 17, byte(len(seg)>>8), byte(len(seg)))
	} else {
		pl := int(binary.BigEndian.Uint16(f[l3+4:]))
		seg = f[l3+40 : l3+40+pl]
		ph = append(append(ph, f[l3+8:l3+40]...), 0, 0, byte(len(seg)>>8), byte(len(seg)), 0, 0, 0, 17)
	}
	if binary.BigEndian.Uint16(seg[6:]) == 0 {
		return 0, false
	}
	return residue(sum16(ph) + sum16(seg)), true
}

// TestProgramModel mutates valid frames at random (a fixed seed) and holds
// both programs to the Go model: a frame is forwarded exactly when the
// model says so; passed frames are untouched; forwarded frames carry the
// flow's addresses, ports and MACs, TTL-1, the same payload, and checksum
// residues equal to the input's (an update neither fixes nor breaks).
func TestProgramModel(t *testing.T) {
	objs := loadTestObjects(t)
	payload := bytes.Repeat([]byte{0x5a}, 40)
	bases := []frameSpec{
		{src: carrier, dst: sbcExt, payload: payload},
		{src: carrier, dst: sbcExt, payload: payload, vlan: 3},
		{src: carrier, dst: sbcExt, payload: payload, zeroUDPCsum: true},
		{src: car6, dst: sbcExt6, payload: payload},
		{src: car6, dst: sbcExt6, payload: payload, vlan: 3},
	}
	acts := map[netip.AddrPort]FlowAction{
		sbcExt:  {From: carrier, Src: sbcInt, Dst: pbx, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 1},
		sbcExt6: {From: car6, Src: sbcInt6, Dst: pbx6, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 1},
	}
	resetTestObjects(t, objs)
	for k, a := range acts {
		putTestFlow(t, objs, FlowKey{k}, a)
	}
	rng := rand.New(rand.NewPCG(4, 2026))
	const iterations = 3000
	hits, passes := 0, 0
	for i := range iterations {
		base := bases[i%len(bases)]
		in := base.build()
		// 1-3 random byte changes in the headers, sometimes a cut.
		for range 1 + rng.IntN(3) {
			in[rng.IntN(min(len(in), 70))] ^= byte(1 + rng.IntN(255))
		}
		if rng.IntN(8) == 0 {
			in = in[:14+rng.IntN(len(in)-14)]
		}
		key := base.dst
		l3, wantHit := modelHit(in, key, acts[key].From)
		for _, pc := range progCases {
			if pc.name == "tc" && len(in) < l3+20 {
				continue // BPF_PROG_RUN for tc refuses frames without an IP header
			}
			inCopy := append([]byte(nil), in...)
			ret, out, err := runErr(pc.prog(objs), in)
			if err != nil {
				if pc.name == "tc" {
					continue // the kernel would not build an skb from it
				}
				t.Fatalf("%s: run: %v", pc.name, err)
			}
			switch {
			case ret == pc.pass && !wantHit:
				passes++
				if !bytes.Equal(out, inCopy) {
					t.Fatalf("%s: passed frame changed\n in %x\nout %x", pc.name, inCopy, out)
				}
			case ret == pc.redir && wantHit:
				hits++
				checkModelRewrite(t, pc.name, inCopy, out, l3, acts[key])
			default:
				t.Fatalf("%s: verdict %d, model says hit=%v\n in %x", pc.name, ret, wantHit, inCopy)
			}
		}
	}
	t.Logf("%d frames: %d forwarded, %d passed, all as the model says", iterations, hits, passes)
	if hits == 0 || passes == 0 {
		t.Fatal("the mutations never produced both outcomes")
	}
}

func runErr(prog *ebpf.Program, in []byte) (uint32, []byte, error) {
	opts := &ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+256)}
	ret, err := prog.Run(opts)
	return ret, opts.DataOut, err
}

func checkModelRewrite(t *testing.T, prog string, in, out []byte, l3 int, a FlowAction) {
	t.Helper()
	vlan := l3 == 18
	// Expected: the frame without its tag.
	exp := append([]byte(nil), in...)
	if vlan {
		exp = append(exp[:12:12], exp[16:]...)
		l3 = 14
	}
	if len(out) != len(exp) {
		t.Fatalf("%s: output %d bytes, want %d", prog, len(out), len(exp))
	}
	if !bytes.Equal(out[0:6], a.DstMAC) || !bytes.Equal(out[6:12], a.SrcMAC) || !bytes.Equal(out[12:14], exp[12:14]) {
		t.Fatalf("%s: ethernet header %x", prog, out[:14])
	}
	var udpOff int
	if exp[l3]>>4 == 4 {
		s, d := a.Src.Addr().As4(), a.Dst.Addr().As4()
		if !bytes.Equal(out[l3+12:l3+16], s[:]) || !bytes.Equal(out[l3+16:l3+20], d[:]) || out[l3+8] != exp[l3+8]-1 {
			t.Fatalf("%s: ipv4 header %x", prog, out[l3:l3+20])
		}
		if residue(sum16(out[l3:l3+20])) != residue(sum16(exp[l3:l3+20])) {
			t.Fatalf("%s: ip checksum residue changed: in %x out %x", prog, exp[l3:l3+20], out[l3:l3+20])
		}
		// Everything but ttl, checksum and addresses is as it was.
		if !bytes.Equal(out[l3:l3+8], exp[l3:l3+8]) || out[l3+9] != exp[l3+9] {
			t.Fatalf("%s: ipv4 header fields changed", prog)
		}
		udpOff = l3 + 20
	} else {
		s, d := a.Src.Addr().As16(), a.Dst.Addr().As16()
		if !bytes.Equal(out[l3+8:l3+24], s[:]) || !bytes.Equal(out[l3+24:l3+40], d[:]) || out[l3+7] != exp[l3+7]-1 ||
			!bytes.Equal(out[l3:l3+7], exp[l3:l3+7]) {
			t.Fatalf("%s: ipv6 header %x", prog, out[l3:l3+40])
		}
		udpOff = l3 + 40
	}
	if binary.BigEndian.Uint16(out[udpOff:]) != a.Src.Port() || binary.BigEndian.Uint16(out[udpOff+2:]) != a.Dst.Port() ||
		!bytes.Equal(out[udpOff+4:udpOff+6], exp[udpOff+4:udpOff+6]) {
		t.Fatalf("%s: udp header %x", prog, out[udpOff:udpOff+8])
	}
	if !bytes.Equal(out[udpOff+8:], exp[udpOff+8:]) {
		t.Fatalf("%s: payload or trailer changed", prog)
	}
	rin, inSum := udpResidue(exp, l3)
	rout, outSum := udpResidue(out, l3)
	if inSum != outSum || rin != rout {
		t.Fatalf("%s: udp checksum residue %#x (present %v) -> %#x (present %v)", prog, rin, inSum, rout, outSum)
	}
}
