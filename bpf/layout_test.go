package bpf

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// TestPrivilegedOldLayoutUnloaded: a fast path pinned by an older layout
// (v1: flows without an expected source, so it forwards any source) is
// detached and unpinned by Open, which then attaches its own program; left
// in place, its XDP link would keep the interface (and forward spoofed
// packets) and Open could not attach xdp there.
func TestPrivilegedOldLayoutUnloaded(t *testing.T) {
	requirePrivileged(t)
	tp := newTopo(t, false)
	old := filepath.Join(tp.pinDir, "v1")
	if err := os.MkdirAll(old, 0o700); err != nil {
		t.Fatal(err)
	}
	// Stand-in for the old program: any XDP program linked on s0 and
	// pinned the way v1 pinned its links, plus a pinned map.
	objs := loadTestObjects(t)
	tp.s.must(t, func() error {
		l, err := link.AttachXDP(link.XDPOptions{Program: objs.XdpFwd, Interface: tp.s0, Flags: link.XDPDriverMode})
		if err != nil {
			return err
		}
		defer l.Close()
		return l.Pin(filepath.Join(old, "link_xdp_s0"))
	})
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Pin(filepath.Join(old, "flows")); err != nil {
		t.Fatal(err)
	}
	m.Close()

	d := tp.open(t, PathXDP)
	defer d.Unload()
	if d.Path() != PathXDP {
		t.Fatalf("path %s (%s)", d.Path(), d.Reason())
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old layout %s still there (%v)", old, err)
	}
	if _, err := os.Stat(layoutDir(tp.pinDir)); err != nil {
		t.Fatalf("current layout: %v", err)
	}
}
