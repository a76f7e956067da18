package mediarelay

import (
	"github.com/edgesbc/edgesbc/bpf"
)

// KernelDatapath adapts the bpf package's datapath to the relay's
// Datapath (the relay keeps its own flow types so that its unit tests run
// against a fake, without root).
func KernelDatapath(d *bpf.Datapath) Datapath { return bpfDatapath{d} }

type bpfDatapath struct{ d *bpf.Datapath }

func (b bpfDatapath) Path() string { return b.d.Path() }

func (b bpfDatapath) Put(k FlowKey, a FlowAction) error {
	return b.d.Put(bpf.FlowKey{Dst: k.Dst}, bpf.FlowAction{From: a.From, Src: a.Src, Dst: a.Dst, SrcMAC: a.SrcMAC, DstMAC: a.DstMAC, Ifindex: a.Ifindex})
}

func (b bpfDatapath) Delete(k FlowKey) error { return b.d.Delete(bpf.FlowKey{Dst: k.Dst}) }

func (b bpfDatapath) Stats() (map[FlowKey]FlowStats, error) {
	st, err := b.d.Stats()
	if err != nil {
		return nil, err
	}
	out := make(map[FlowKey]FlowStats, len(st))
	for k, v := range st {
		out[FlowKey{Dst: k.Dst}] = FlowStats{Packets: v.Packets, Bytes: v.Bytes, LastSeen: v.LastSeen}
	}
	return out, nil
}

func (b bpfDatapath) Flows() (map[FlowKey]FlowAction, error) {
	fl, err := b.d.Flows()
	if err != nil {
		return nil, err
	}
	out := make(map[FlowKey]FlowAction, len(fl))
	for k, a := range fl {
		out[FlowKey{Dst: k.Dst}] = FlowAction{From: a.From, Src: a.Src, Dst: a.Dst, SrcMAC: a.SrcMAC, DstMAC: a.DstMAC, Ifindex: a.Ifindex}
	}
	return out, nil
}
