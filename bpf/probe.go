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

// checkEgress says whether native XDP redirects out of ifname reach the
// device (issue 4, item 6: into a veth whose peer has no NAPI they are
// dropped silently while the program's counters look fine). Two
// independent signs, both from the kernel rather than our own counters:
//   - the device's xdp-features (netdev netlink): a veth advertises
//     ndo-xmit only while its peer has NAPI;
//   - a live-frame probe: xdp_probe redirects probeFrames frames out of
//     the device for real, and the xdp_devmap_xmit monitor (and the
//     device's tx_dropped) must not see them dropped.
func (d *Datapath) checkEgress(ifname string, ifindex int) error {
	feat, ferr := xdpFeatures(ifindex)
	if ferr == nil && feat&netdevXDPActNDOXmit == 0 {
		return fmt.Errorf("%s does not advertise xdp ndo-xmit (xdp-features %#x): redirected frames would be dropped (a veth whose peer has no XDP program and GRO off)", ifname, feat)
	}
	if err := d.probeDelivery(ifname, ifindex); err != nil {
		return err
	}
	if ferr != nil && d.mon == nil {
		return fmt.Errorf("cannot verify xdp delivery out of %s (%v; no xdp_devmap_xmit monitor)", ifname, ferr)
	}
	return nil
}

func (d *Datapath) probeDelivery(ifname string, ifindex int) error {
	lk, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("read link %s: %w", ifname, err)
	}
	if err := d.objs.ProbeTarget.Update(uint32(0), uint32(ifindex), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set probe target: %w", err)
	}
	txBefore, err := txDropped(ifindex)
	if err != nil {
		return err
	}
	var monBefore uint64
	if d.mon != nil {
		if _, monBefore, err = d.mon.counts(ifindex, d.netns, d.txMapID); err != nil {
			return fmt.Errorf("read monitor: %w", err)
		}
	}
	// In live-frame mode the frames really go out; the return value is
	// not the program's verdict.
	_, err = d.objs.XdpProbe.Run(&ebpf.RunOptions{
		Data:   probeFrame(lk.Attrs().HardwareAddr),
		Repeat: probeFrames,
		Flags:  unix.BPF_F_TEST_XDP_LIVE_FRAMES,
	})
	if err != nil {
		return fmt.Errorf("run live-frame probe out of %s: %w", ifname, err)
	}
	if d.mon != nil {
		_, monAfter, err := d.mon.counts(ifindex, d.netns, d.txMapID)
		if err != nil {
			return fmt.Errorf("read monitor: %w", err)
		}
		if dropped := monAfter - monBefore; dropped*2 >= probeFrames {
			return fmt.Errorf("%s dropped %d of %d redirected probe frames (xdp_devmap_xmit)", ifname, dropped, probeFrames)
		}
	}
	txAfter, err := txDropped(ifindex)
	if err != nil {
		return err
	}
	if dropped := txAfter - txBefore; dropped*2 >= probeFrames {
		return fmt.Errorf("%s tx_dropped rose by %d for %d redirected probe frames", ifname, dropped, probeFrames)
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
