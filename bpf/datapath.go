package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Paths a Datapath can run on (Path's values).
const (
	PathXDP        = "xdp"         // native XDP, redirect through a DEVMAP
	PathXDPGeneric = "xdp-generic" // generic (skb) XDP: for benchmarks and odd drivers
	PathTC         = "tc"          // tcx ingress, bpf_redirect
)

// Options configure Open.
type Options struct {
	Interfaces []string // interfaces to attach to (ingress), e.g. ext0,int0; also the egress set
	Mode       string   // "auto" (default) | "xdp" | "xdp-generic" | "tc"
	PinDir     string   // e.g. /sys/fs/bpf/edgesbc/<node>; unique per sbcd instance
	Logger     *slog.Logger
	// CheckInterval is how often, on the native XDP path, the loader
	// re-checks that redirects are delivered (xdp-features and the
	// xdp_devmap_xmit drop monitor) and, in auto mode, falls back to tc
	// when they are not. 0 means 2s; negative turns the check off.
	CheckInterval time.Duration
}

// Datapath is the loaded fast path: programs attached to Options.Interfaces
// and the flow maps, all pinned under PinDir. Methods are safe for
// concurrent use. Calls that touch interfaces by index (Open, Put with a
// new egress ifindex) act in the calling thread's network namespace.
type Datapath struct {
	log    *slog.Logger
	opts   Options
	pinDir string // resolved, may be under /proc/1/root
	dir    string // layout dir
	ncpu   int

	netns    uint32         // inode of the netns the interfaces live in
	nsHandle netns.NsHandle // the same, for the watchdog's thread
	ifindex  map[string]int
	mon      *monitor // nil where tp_btf is unavailable
	txMapID  ebpf.MapID
	stop     chan struct{}
	wg       sync.WaitGroup

	mu     sync.Mutex
	objs   datapathObjects
	links  map[string]link.Link // by interface name
	path   string
	reason string
	egress map[uint32]bool // ifindexes known to be in tx_ports
	closed bool
}

// Open creates the pinned maps, programs and links under opts.PinDir, or
// reopens them when an earlier sbcd left them there (flows keep flowing
// across the restart; the programs are replaced in place by this binary's),
// attaches to every interface and picks the path. Errors that mean "relay in
// user space instead" wrap ErrUnsupported.
func Open(opts Options) (*Datapath, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Mode == "" {
		opts.Mode = "auto"
	}
	switch opts.Mode {
	case "auto", PathXDP, PathXDPGeneric, PathTC:
	default:
		return nil, fmt.Errorf("bpf: mode %q: want auto, xdp, xdp-generic or tc", opts.Mode)
	}
	if len(opts.Interfaces) == 0 {
		return nil, fmt.Errorf("bpf: no interfaces to attach to")
	}
	if opts.PinDir == "" {
		return nil, fmt.Errorf("bpf: no pin dir")
	}
	ifindex := make(map[string]int, len(opts.Interfaces))
	for _, name := range opts.Interfaces {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("%w: interface %s: %v", ErrUnsupported, name, err)
		}
		ifindex[name] = ifc.Index
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("%w: possible CPUs: %v", ErrUnsupported, err)
	}
	_ = rlimit.RemoveMemlock() // kernels >= 5.11 account BPF memory to the cgroup instead

	pinDir, err := resolvePinDir(opts.PinDir, opts.Logger)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(pinDir, fmt.Sprintf("v%d", layoutVersion))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: create pin dir %s: %v", ErrUnsupported, dir, err)
	}
	unlock, err := lockDir(pinDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	defer unlock()
	if err := removeOldLayouts(pinDir, opts.Logger); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIncompatible, err)
	}

	d := &Datapath{
		log: opts.Logger, opts: opts, pinDir: pinDir, dir: dir, ncpu: ncpu,
		links: map[string]link.Link{}, egress: map[uint32]bool{},
		ifindex: ifindex, stop: make(chan struct{}),
	}
	if d.netns, err = threadNetns(); err != nil {
		return nil, fmt.Errorf("%w: read network namespace: %v", ErrUnsupported, err)
	}
	if d.nsHandle, err = netns.Get(); err != nil {
		return nil, fmt.Errorf("%w: open network namespace: %v", ErrUnsupported, err)
	}
	ok := false
	defer func() {
		if !ok {
			d.closeLinks()
			d.objs.Close()
			if d.mon != nil {
				d.mon.Close()
			}
			d.nsHandle.Close()
		}
	}()
	spec, err := loadDatapath()
	if err != nil {
		return nil, fmt.Errorf("%w: parse embedded object: %v", ErrUnsupported, err)
	}
	err = spec.LoadAndAssign(&d.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: dir}})
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return nil, fmt.Errorf("%w: %s: %v", ErrIncompatible, dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: load programs: %v", ErrUnsupported, err)
	}
	for _, name := range opts.Interfaces {
		if err := d.addEgress(uint32(ifindex[name])); err != nil {
			return nil, fmt.Errorf("%w: add %s to tx_ports: %v", ErrUnsupported, name, err)
		}
	}
	if info, err := d.objs.TxPorts.Info(); err == nil {
		d.txMapID, _ = info.ID()
	}
	if d.mon, err = openMonitor(); err != nil {
		d.log.Info("bpf: no xdp redirect drop monitor; relying on xdp-features", "err", err)
		d.mon = nil
	}

	path, reason := d.choosePath()
	if err := d.attachAll(path); err != nil {
		if opts.Mode != "auto" || path == PathTC {
			return nil, fmt.Errorf("%w: attach %s: %v", ErrUnsupported, path, err)
		}
		reason = fmt.Sprintf("%s attach failed (%v)", path, err)
		path = PathTC
		if err := d.attachAll(path); err != nil {
			return nil, fmt.Errorf("%w: attach tc after %s: %v", ErrUnsupported, reason, err)
		}
	}
	d.path, d.reason = path, reason
	d.log.Info("bpf: media fast path attached", "path", path, "why", reason,
		"interfaces", strings.Join(opts.Interfaces, ","), "pin_dir", dir)
	if path == PathXDP && opts.CheckInterval >= 0 {
		interval := opts.CheckInterval
		if interval == 0 {
			interval = 2 * time.Second
		}
		d.wg.Add(1)
		go d.watch(interval)
	}
	ok = true
	return d, nil
}

// choosePath decides which path to attach, and why.
func (d *Datapath) choosePath() (string, string) {
	if d.opts.Mode != "auto" {
		if d.opts.Mode == PathXDP {
			for _, name := range d.opts.Interfaces {
				if err := d.checkEgress(name, d.ifindex[name]); err != nil {
					d.log.Warn("bpf: xdp forced, but redirects may be dropped", "err", err)
				}
			}
		}
		return d.opts.Mode, "forced by mode " + d.opts.Mode
	}
	if p := d.pinnedPath(); p != "" {
		return p, "reopened the pinned " + p + " links of a previous run"
	}
	for _, name := range d.opts.Interfaces {
		if err := d.checkEgress(name, d.ifindex[name]); err != nil {
			return PathTC, "xdp redirect not delivered: " + err.Error()
		}
	}
	return PathXDP, "xdp redirects delivered out of every interface (xdp-features and live probe)"
}

// pinnedPath returns the path whose links are pinned for every interface.
func (d *Datapath) pinnedPath() string {
	for _, p := range []string{PathXDP, PathXDPGeneric, PathTC} {
		all := true
		for _, name := range d.opts.Interfaces {
			if _, err := os.Stat(linkPin(d.dir, pinName(p), name)); err != nil {
				all = false
				break
			}
		}
		if all {
			return p
		}
	}
	return ""
}

func pinName(path string) string { return strings.ReplaceAll(path, "-", "") }

// attachAll attaches path's program on every interface (reusing and
// updating pinned links) and then removes links of other paths.
func (d *Datapath) attachAll(path string) error {
	others := []string{PathXDP, PathXDPGeneric, PathTC}
	// Native and generic XDP cannot both sit on a device: clear the other first.
	for _, p := range others {
		if p != path && strings.HasPrefix(p, "xdp") && strings.HasPrefix(path, "xdp") {
			d.removeLinks(p)
		}
	}
	for _, name := range d.opts.Interfaces {
		l, err := d.attach(path, name, d.ifindex[name])
		if err != nil {
			return fmt.Errorf("%s on %s: %w", path, name, err)
		}
		if old := d.links[name]; old != nil {
			_ = old.Close()
		}
		d.links[name] = l
	}
	for _, p := range others {
		if p != path {
			d.removeLinks(p)
		}
	}
	return nil
}

func (d *Datapath) removeLinks(path string) {
	matches, _ := filepath.Glob(filepath.Join(d.dir, "link_"+pinName(path)+"_*"))
	for _, m := range matches {
		if err := detachPinned(m); err != nil {
			d.log.Warn("bpf: detach stale link", "pin", m, "err", err)
		}
	}
}

func (d *Datapath) program(path string) *ebpf.Program {
	if path == PathTC {
		return d.objs.TcFwd
	}
	return d.objs.XdpFwd
}

func (d *Datapath) attach(path, ifname string, ifindex int) (link.Link, error) {
	pin := linkPin(d.dir, pinName(path), ifname)
	prog := d.program(path)
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		if linkIfindex(l) == ifindex {
			if err := l.Update(prog); err == nil {
				return l, nil
			}
		}
		// Defunct (interface recreated) or not updatable: replace it.
		_ = l.Unpin()
		_ = l.Close()
	}
	var (
		l   link.Link
		err error
	)
	switch path {
	case PathXDP:
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
	case PathXDPGeneric:
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPGenericMode})
	default:
		l, err = link.AttachTCX(link.TCXOptions{Program: prog, Interface: ifindex, Attach: ebpf.AttachTCXIngress})
	}
	if err != nil {
		return nil, err
	}
	if err := l.Pin(pin); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("pin link: %w", err)
	}
	return l, nil
}

func linkIfindex(l link.Link) int {
	info, err := l.Info()
	if err != nil {
		return -1
	}
	if x := info.XDP(); x != nil {
		return int(x.Ifindex)
	}
	if t := info.TCX(); t != nil {
		return int(t.Ifindex)
	}
	return -1
}

// addEgress puts ifindex into the XDP DEVMAP (resolved in the calling
// thread's network namespace).
func (d *Datapath) addEgress(ifindex uint32) error {
	if d.egress[ifindex] {
		return nil
	}
	if err := d.objs.TxPorts.Update(ifindex, ifindex, ebpf.UpdateAny); err != nil {
		return err
	}
	d.egress[ifindex] = true
	return nil
}

// Path returns the path in use: "xdp", "xdp-generic" or "tc". It can turn
// from xdp to tc at run time when redirects stop being delivered.
func (d *Datapath) Path() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.path
}

// Reason says why Path was chosen.
func (d *Datapath) Reason() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reason
}

// PinDir returns the versioned directory holding the pinned state.
func (d *Datapath) PinDir() string { return d.dir }

// Put installs or replaces the flow for k. A replaced flow keeps its
// counters. The egress interface joins the DEVMAP if it is not there yet.
func (d *Datapath) Put(k FlowKey, a FlowAction) error {
	key, err := k.marshal()
	if err != nil {
		return err
	}
	act, err := a.marshal(key.Family)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if err := d.addEgress(act.Ifindex); err != nil {
		return fmt.Errorf("bpf: put %s: egress ifindex %d: %w", k, a.Ifindex, err)
	}
	zero := make([]datapathFlowStats, d.ncpu)
	if err := d.objs.FlowCounters.Update(key, zero, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("bpf: put %s: counters: %w", k, err)
	}
	if err := d.objs.Flows.Update(key, act, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("bpf: put %s: %w", k, err)
	}
	return nil
}

// Delete removes the flow for k and its counters. Deleting a flow that is
// not there is not an error.
func (d *Datapath) Delete(k FlowKey) error {
	key, err := k.marshal()
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if err := d.objs.Flows.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("bpf: delete %s: %w", k, err)
	}
	if err := d.objs.FlowCounters.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("bpf: delete %s counters: %w", k, err)
	}
	return nil
}

// Stats returns every flow's counters (batch lookup, per-CPU values summed,
// LastSeen the latest over CPUs in wall time).
func (d *Datapath) Stats() (map[FlowKey]FlowStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	keys, vals, err := dumpMap[datapathFlowKey, datapathFlowStats](d.objs.FlowCounters, d.ncpu)
	if err != nil {
		return nil, fmt.Errorf("bpf: read flow counters: %w", err)
	}
	monoNow := monotonicNow()
	wallNow := time.Now()
	out := make(map[FlowKey]FlowStats, len(keys))
	for i, k := range keys {
		var s FlowStats
		var last uint64
		for _, v := range vals[i*d.ncpu : (i+1)*d.ncpu] {
			s.Packets += v.Packets
			s.Bytes += v.Bytes
			last = max(last, v.LastSeen)
		}
		if last != 0 {
			s.LastSeen = wallNow.Add(-time.Duration(int64(monoNow) - int64(last)))
		}
		out[k.unmarshal()] = s
	}
	return out, nil
}

// Flows returns every installed flow (to reconcile after a restart).
func (d *Datapath) Flows() (map[FlowKey]FlowAction, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	keys, vals, err := dumpMap[datapathFlowKey, datapathFlowAction](d.objs.Flows, 1)
	if err != nil {
		return nil, fmt.Errorf("bpf: read flows: %w", err)
	}
	out := make(map[FlowKey]FlowAction, len(keys))
	for i, k := range keys {
		out[k.unmarshal()] = vals[i].unmarshal()
	}
	return out, nil
}

// FlowCount returns the number of installed flows.
func (d *Datapath) FlowCount() (int, error) {
	f, err := d.Flows()
	return len(f), err
}

// Counters returns the programs' global counters summed over CPUs.
func (d *Datapath) Counters() (Counters, error) {
	var c Counters
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return c, ErrClosed
	}
	vals := make([]uint64, d.ncpu)
	for i := range c {
		if err := d.objs.Counters.Lookup(uint32(i), &vals); err != nil {
			return c, fmt.Errorf("bpf: read counter %s: %w", Counter(i), err)
		}
		for _, v := range vals {
			c[i] += v
		}
	}
	return c, nil
}

// dumpMap reads a whole hash map with batch lookups (falling back to
// iteration where batches are unsupported). For per-CPU maps pass
// mult = number of possible CPUs: vals then holds mult values per key.
func dumpMap[K, V any](m *ebpf.Map, mult int) ([]K, []V, error) {
	const chunk = 4096
	var keys []K
	var vals []V
	cursor := new(ebpf.MapBatchCursor)
	for {
		kb := make([]K, chunk)
		vb := make([]V, chunk*mult)
		n, err := m.BatchLookup(cursor, kb, vb, nil)
		keys = append(keys, kb[:n]...)
		vals = append(vals, vb[:n*mult]...)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return keys, vals, nil
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
	}
	keys, vals = keys[:0], vals[:0]
	var k K
	v := make([]V, mult)
	it := m.Iterate()
	for {
		var ok bool
		if mult == 1 {
			var one V
			ok = it.Next(&k, &one)
			v[0] = one
		} else {
			ok = it.Next(&k, &v)
		}
		if !ok {
			break
		}
		keys = append(keys, k)
		vals = append(vals, v...)
	}
	return keys, vals, it.Err()
}

func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

func (d *Datapath) closeLinks() {
	for name, l := range d.links {
		_ = l.Close()
		delete(d.links, name)
	}
}

// Close releases this process's handles. The pinned programs, links and
// maps stay, so media keeps flowing until the next Open (or Unload).
func (d *Datapath) Close() error {
	d.stopWatch()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.release()
}

func (d *Datapath) release() error {
	if d.closed {
		return nil
	}
	d.closed = true
	d.closeLinks()
	err := d.objs.Close()
	if d.mon != nil {
		err = errors.Join(err, d.mon.Close())
	}
	d.nsHandle.Close()
	return err
}

func (d *Datapath) stopWatch() {
	d.mu.Lock()
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	d.mu.Unlock()
	d.wg.Wait()
}

// Unload detaches the programs and removes every pin: the fast path is gone
// and all flows with it.
func (d *Datapath) Unload() error {
	d.stopWatch()
	d.mu.Lock()
	defer d.mu.Unlock()
	unlock, err := lockDir(d.pinDir)
	if err != nil {
		return err
	}
	defer unlock()
	return errors.Join(removePinned(d.pinDir), d.release())
}
