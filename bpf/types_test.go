package bpf

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

// TestFlowMarshal: what Put refuses (no root needed), and that keys and
// actions survive the trip through the C layout.
func TestFlowMarshal(t *testing.T) {
	good := FlowAction{Src: sbcInt, Dst: pbx, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 3}
	with := func(f func(*FlowAction)) FlowAction { a := good; f(&a); return a }
	bad := []struct {
		name string
		key  FlowKey
		act  FlowAction
	}{
		{"no key", FlowKey{}, good},
		{"key port 0", FlowKey{netip.AddrPortFrom(sbcExt.Addr(), 0)}, good},
		{"v6 key, v4 action", FlowKey{sbcExt6}, good},
		{"mixed action", FlowKey{sbcExt}, with(func(a *FlowAction) { a.Dst = pbx6 })},
		{"no src", FlowKey{sbcExt}, with(func(a *FlowAction) { a.Src = netip.AddrPort{} })},
		{"dst port 0", FlowKey{sbcExt}, with(func(a *FlowAction) { a.Dst = netip.AddrPortFrom(pbx.Addr(), 0) })},
		{"short MAC", FlowKey{sbcExt}, with(func(a *FlowAction) { a.DstMAC = net.HardwareAddr{1, 2, 3} })},
		{"no MAC", FlowKey{sbcExt}, with(func(a *FlowAction) { a.SrcMAC = nil })},
		{"no ifindex", FlowKey{sbcExt}, with(func(a *FlowAction) { a.Ifindex = 0 })},
	}
	for _, c := range bad {
		k, err := c.key.marshal()
		if err == nil {
			_, err = c.act.marshal(k.Family)
		}
		if !errors.Is(err, ErrBadFlow) {
			t.Errorf("%s: %v, want ErrBadFlow", c.name, err)
		}
	}

	mapped := FlowKey{netip.AddrPortFrom(netip.AddrFrom16(sbcExt.Addr().As16()), sbcExt.Port())}
	for _, c := range []struct {
		key FlowKey
		act FlowAction
	}{
		{FlowKey{sbcExt}, good},
		{mapped, good},
		{FlowKey{sbcExt6}, FlowAction{Src: sbcInt6, Dst: pbx6, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 7}},
	} {
		k, err := c.key.marshal()
		if err != nil {
			t.Fatal(err)
		}
		a, err := c.act.marshal(k.Family)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := k.unmarshal().Dst, netip.AddrPortFrom(c.key.Dst.Addr().Unmap(), c.key.Dst.Port()); got != want {
			t.Errorf("key %s came back as %s", want, got)
		}
		if got := a.unmarshal(); got.String() != c.act.String() {
			t.Errorf("action %s came back as %s", c.act, got)
		}
	}
	if n := len(counterNames); n != int(counterMax) || CounterBanned.String() != "banned" {
		t.Errorf("counter names out of step with the enum")
	}
}
