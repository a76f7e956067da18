package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// probeFrames is how many frames the delivery probe sends out of each
// interface.
const probeFrames = 32

// probeFrame is an Ethernet frame nobody will take: a locally administered
// unicast destination and the IEEE local-experimental EtherType 0x88B5, so
// the peer's stack drops it on sight when it is delivered.
func probeFrame(src []byte) []byte {
	f := make([]byte, 60)
	copy(f[0:6], []byte{0x02, 0xed, 0x9e, 0x5b, 0xc0, 0x01})
	copy(f[6:12], src)
	f[12], f[13] = 0x88, 0xb5
	copy(f[14:], "edgesbc xdp redirect delivery probe")
	return f
}

// probeDelivery checks that an XDP redirect out of ifname is delivered: it
// runs xdp_probe in live-frame mode (BPF_F_TEST_XDP_LIVE_FRAMES, so the
// redirects really happen) and compares the device's tx_dropped before and
// after. A veth whose peer has no NAPI (no XDP program, GRO off) drops
// every such frame while the program sees XDP_REDIRECT succeed; that is
// what this catches (issue 4, item 6).
func (d *Datapath) probeDelivery(ifname string, ifindex int) error {
	lk, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("read link %s: %w", ifname, err)
	}
	if err := d.objs.ProbeTarget.Update(uint32(0), uint32(ifindex), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set probe target: %w", err)
	}
	before, err := txDropped(ifindex)
	if err != nil {
		return err
	}
	ret, err := d.objs.XdpProbe.Run(&ebpf.RunOptions{
		Data:   probeFrame(lk.Attrs().HardwareAddr),
		Repeat: probeFrames,
		Flags:  unix.BPF_F_TEST_XDP_LIVE_FRAMES,
	})
	if err != nil {
		return fmt.Errorf("run live-frame probe: %w", err)
	}
	if ret != 4 { // XDP_REDIRECT
		return fmt.Errorf("probe returned %d, not XDP_REDIRECT", ret)
	}
	after, err := txDropped(ifindex)
	if err != nil {
		return err
	}
	if dropped := after - before; dropped*2 >= probeFrames {
		return fmt.Errorf("tx_dropped rose by %d for %d redirected probe frames (a veth whose peer has no NAPI: no XDP program and GRO off)", dropped, probeFrames)
	}
	return nil
}

func txDropped(ifindex int) (uint64, error) {
	lk, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return 0, fmt.Errorf("read link %d: %w", ifindex, err)
	}
	st := lk.Attrs().Statistics
	if st == nil {
		return 0, fmt.Errorf("link %d has no statistics", ifindex)
	}
	return st.TxDropped, nil
}
