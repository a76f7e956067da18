package bpf

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// monitor counts, per egress device, the XDP redirect frames the device
// took and the ones that were dropped (tracepoints xdp:xdp_redirect_err
// and xdp:xdp_devmap_xmit). It is best effort: without BTF for tp_btf it
// is absent and the loader relies on the devices' xdp-features alone.
type monitor struct {
	objs  monitorObjects
	links []link.Link
}

func openMonitor() (*monitor, error) {
	m := &monitor{}
	if err := loadMonitorObjects(&m.objs, nil); err != nil {
		return nil, fmt.Errorf("load xdp_devmap_xmit monitor: %w", err)
	}
	for _, p := range []*ebpf.Program{m.objs.DevmapXmit, m.objs.RedirectError} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("attach monitor %s: %w", p, err)
		}
		m.links = append(m.links, l)
	}
	return m, nil
}

// counts returns the redirected frames the device (ifindex in netns, key
// ifindex of DEVMAP txMap) took, and those dropped on the way.
func (m *monitor) counts(ifindex int, netns uint32, txMap ebpf.MapID) (sent, drops uint64, err error) {
	var v monitorXmitVal
	err = m.objs.Xmit.Lookup(monitorXmitKey{Ifindex: uint32(ifindex), Netns: netns}, &v)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, 0, err
	}
	var redirErr uint64
	err = m.objs.RedirectErr.Lookup(monitorRedirKey{MapId: uint32(txMap), Index: uint32(ifindex)}, &redirErr)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, 0, err
	}
	return v.Sent, v.Drops + redirErr, nil
}

func (m *monitor) Close() error {
	var errs []error
	for _, l := range m.links {
		errs = append(errs, l.Close())
	}
	return errors.Join(append(errs, m.objs.Close())...)
}

// threadNetns returns the inode number of the calling thread's network
// namespace (what the monitor records as the device's netns).
func threadNetns() (uint32, error) {
	fi, err := os.Stat("/proc/thread-self/ns/net")
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("stat netns: no inode")
	}
	return uint32(st.Ino), nil
}
