package test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// The lab's ceiling for bench-media: a tcx ingress program on each of the
// SBC's interfaces that rewrites every UDP packet to a port in
// [ceilLo, ceilHi) with fixed addresses and MACs (no lookup of any kind;
// the port is kept, so the generator's socket i reaches the sink's socket
// i) and redirects it out of the other interface. It costs what the
// cheapest possible forwarding costs on this machine: the kernel fast
// path is measured against it.

const (
	tcActOK     = 0
	bpfFPseudo  = 0x10 // BPF_F_PSEUDO_HDR
	bpfFMangled = 0x20 // BPF_F_MARK_MANGLED_0: a zero UDP checksum stays zero
)

// ceilingRewrite is one direction: packets entering the SBC on one
// interface leave from newSrc to newDst through outIfindex.
type ceilingRewrite struct {
	newSrc, newDst netip.Addr
	srcMAC, dstMAC net.HardwareAddr
	outIfindex     int
	lo, hi         uint16 // UDP destination ports taken
}

func raw32(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) }

// program assembles the rewrite. Helpers: skb_load_bytes to read, the
// l3/l4 checksum helpers for the incremental updates, skb_store_bytes to
// write, redirect to send.
func (c ceilingRewrite) program() (*ebpf.Program, error) {
	const (
		skb    = asm.R6
		oldSrc = asm.R7
		oldDst = asm.R8
	)
	ns, nd := c.newSrc.As4(), c.newDst.As4()
	macs := append(append([]byte{}, c.dstMAC...), c.srcMAC...) // 12 bytes
	load := func(off, size int32) asm.Instructions {           // into stack -16
		return asm.Instructions{
			asm.Mov.Reg(asm.R1, skb),
			asm.Mov.Imm(asm.R2, off),
			asm.Mov.Reg(asm.R3, asm.RFP),
			asm.Add.Imm(asm.R3, -16),
			asm.Mov.Imm(asm.R4, size),
			asm.FnSkbLoadBytes.Call(),
			asm.JNE.Imm(asm.R0, 0, "pass"),
		}
	}
	csum := func(fn asm.BuiltinFunc, off int32, from asm.Register, to int32, flags int32) asm.Instructions {
		return asm.Instructions{
			asm.Mov.Reg(asm.R1, skb),
			asm.Mov.Imm(asm.R2, off),
			asm.Mov.Reg(asm.R3, from),
			asm.LoadImm(asm.R4, int64(uint32(to)), asm.DWord),
			asm.Mov.Imm(asm.R5, flags),
			fn.Call(),
		}
	}
	var ins asm.Instructions
	ins = append(ins, asm.Mov.Reg(skb, asm.R1))
	// Ethertype IPv4 (0x0800, read as a little-endian u16: 0x0008).
	ins = append(ins, load(12, 2)...)
	ins = append(ins, asm.LoadMem(asm.R1, asm.RFP, -16, asm.Half), asm.JNE.Imm(asm.R1, 0x0008, "pass"))
	// Version 4, IHL 5, protocol UDP: bytes 14 (0x45) and 23.
	ins = append(ins, load(14, 1)...)
	ins = append(ins, asm.LoadMem(asm.R1, asm.RFP, -16, asm.Byte), asm.JNE.Imm(asm.R1, 0x45, "pass"))
	ins = append(ins, load(23, 1)...)
	ins = append(ins, asm.LoadMem(asm.R1, asm.RFP, -16, asm.Byte), asm.JNE.Imm(asm.R1, 17, "pass"))
	// UDP destination port (big endian at 36) in [lo, hi).
	ins = append(ins, load(36, 2)...)
	ins = append(ins,
		asm.LoadMem(asm.R1, asm.RFP, -16, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.JLT.Imm(asm.R1, int32(c.lo), "pass"),
		asm.JGE.Imm(asm.R1, int32(c.hi), "pass"),
	)
	// Old addresses (raw network-order words).
	ins = append(ins, load(26, 8)...)
	ins = append(ins,
		asm.LoadMem(oldSrc, asm.RFP, -16, asm.Word),
		asm.LoadMem(oldDst, asm.RFP, -12, asm.Word),
	)
	ins = append(ins, csum(asm.FnL3CsumReplace, 24, oldSrc, raw32(ns[:]), 4)...)
	ins = append(ins, csum(asm.FnL3CsumReplace, 24, oldDst, raw32(nd[:]), 4)...)
	ins = append(ins, csum(asm.FnL4CsumReplace, 40, oldSrc, raw32(ns[:]), bpfFPseudo|bpfFMangled|4)...)
	ins = append(ins, csum(asm.FnL4CsumReplace, 40, oldDst, raw32(nd[:]), bpfFPseudo|bpfFMangled|4)...)
	// New addresses, then MACs, from the stack.
	ins = append(ins,
		asm.StoreImm(asm.RFP, -16, int64(raw32(ns[:])), asm.Word),
		asm.StoreImm(asm.RFP, -12, int64(raw32(nd[:])), asm.Word),
		asm.Mov.Reg(asm.R1, skb), asm.Mov.Imm(asm.R2, 26), asm.Mov.Reg(asm.R3, asm.RFP), asm.Add.Imm(asm.R3, -16),
		asm.Mov.Imm(asm.R4, 8), asm.Mov.Imm(asm.R5, 0), asm.FnSkbStoreBytes.Call(),
		asm.StoreImm(asm.RFP, -16, int64(raw32(macs[0:4])), asm.Word),
		asm.StoreImm(asm.RFP, -12, int64(raw32(macs[4:8])), asm.Word),
		asm.StoreImm(asm.RFP, -8, int64(raw32(macs[8:12])), asm.Word),
		asm.Mov.Reg(asm.R1, skb), asm.Mov.Imm(asm.R2, 0), asm.Mov.Reg(asm.R3, asm.RFP), asm.Add.Imm(asm.R3, -16),
		asm.Mov.Imm(asm.R4, 12), asm.Mov.Imm(asm.R5, 0), asm.FnSkbStoreBytes.Call(),
		asm.Mov.Imm(asm.R1, int32(c.outIfindex)),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcActOK).WithSymbol("pass"),
		asm.Return(),
	)
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "ceiling", Type: ebpf.SchedCLS, License: "GPL", Instructions: ins,
	})
}

// ceiling attaches the two directions in namespace sbc; stop detaches.
func attachCeiling(lo, hi uint16) (stop func(), err error) {
	var links []link.Link
	var progs []*ebpf.Program
	stop = func() {
		for _, l := range links {
			_ = l.Close()
		}
		for _, p := range progs {
			_ = p.Close()
		}
	}
	var carMAC, entMAC net.HardwareAddr
	var ext, in *net.Interface
	for _, x := range []struct {
		ns, dev string
		mac     *net.HardwareAddr
		ifi     **net.Interface
	}{{"car", "car0", &carMAC, nil}, {"ent", "ent0", &entMAC, nil}, {"sbc", "ext0", nil, &ext}, {"sbc", "int0", nil, &in}} {
		if err := inNetns(x.ns, func() error {
			i, err := net.InterfaceByName(x.dev)
			if err != nil {
				return err
			}
			if x.mac != nil {
				*x.mac = i.HardwareAddr
			} else {
				*x.ifi = i
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	dirs := []struct {
		in *net.Interface
		rw ceilingRewrite
	}{
		{ext, ceilingRewrite{netip.MustParseAddr(sbcInt), netip.MustParseAddr(pbxHost), in.HardwareAddr, entMAC, in.Index, lo, hi}},
		{in, ceilingRewrite{netip.MustParseAddr(sbcExt), netip.MustParseAddr(carrierHost), ext.HardwareAddr, carMAC, ext.Index, lo, hi}},
	}
	for _, d := range dirs {
		p, err := d.rw.program()
		if err != nil {
			stop()
			return nil, fmt.Errorf("ceiling program: %w", err)
		}
		progs = append(progs, p)
		var l link.Link
		err = inNetns("sbc", func() error {
			var err error
			l, err = link.AttachTCX(link.TCXOptions{Interface: d.in.Index, Program: p, Attach: ebpf.AttachTCXIngress})
			return err
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("attach ceiling on %s: %w", d.in.Name, err)
		}
		links = append(links, l)
	}
	return stop, nil
}
