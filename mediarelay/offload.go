package mediarelay

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Kernel offload. Once both sides of a stream have latched and nothing
// about its packets needs changing (plain RTP to plain RTP: no SRTP, no
// transcoding; Stream.NeedsTransform, srtp_stream.go), the relay hands the stream's flows to a kernel datapath
// (bpf/: XDP or tc): a packet arriving at the SBC's port on one side is
// rewritten there (addresses, ports, MACs, checksums) and sent out toward
// the other side's latched address without reaching this process. The
// relay's sockets stay bound the whole time: they hold the ports, and
// packets the kernel does not forward (no flow any more, odd packets)
// still arrive at them.
//
// The offloader (one goroutine per Relay) reconciles, per stream, the flows
// that should be in the kernel with those that are: on every latch (the
// worker kicks it) and once a tick, when it also reads every flow's
// counters in one batch (they feed the stream's stats and its media
// timeout) and re-resolves next-hop MACs, reinstalling a flow whose
// neighbour changed. SetRemote (re-INVITE, hold, port move) and Close
// remove a stream's flows at once, before they return.
//
// Latching while offloaded: the kernel program looks flows up by the SBC's
// destination address, and each flow carries the source it was latched to
// (From: the sending side's latched address and port). It forwards only
// packets from exactly that source; anything else arriving at an
// offloaded port (a hijack attempt, a NAT rebinding) goes to the stack
// untouched, so it reaches the relay's socket and the relay's latching
// rules decide, as they would without offload. When a latch changes
// (SetRemote unlatches, a side latches again) the flows are reinstalled
// with the new From. SetUserSpace keeps a stream out of the kernel
// altogether.

// FlowKey is a packet arriving at one of the SBC's media ports. It mirrors
// bpf.FlowKey.
type FlowKey struct{ Dst netip.AddrPort }

// FlowAction is what the kernel does with a flow's packets that come from
// From: send them from Src to Dst, with these MACs, out of Ifindex. It
// mirrors bpf.FlowAction.
type FlowAction struct {
	From           netip.AddrPort // the latched source; packets from others go to the relay
	Src, Dst       netip.AddrPort
	SrcMAC, DstMAC net.HardwareAddr
	Ifindex        int
}

func (a FlowAction) equal(b FlowAction) bool {
	return a.From == b.From && a.Src == b.Src && a.Dst == b.Dst && a.Ifindex == b.Ifindex &&
		bytes.Equal(a.SrcMAC, b.SrcMAC) && bytes.Equal(a.DstMAC, b.DstMAC)
}

// FlowStats are a flow's kernel counters since it was put. It mirrors
// bpf.FlowStats.
type FlowStats struct {
	Packets, Bytes uint64
	LastSeen       time.Time
}

// Datapath is the kernel fast path (bpf.Datapath behind an adapter; a fake
// in unit tests).
type Datapath interface {
	Path() string // "xdp" or "tc"
	Put(FlowKey, FlowAction) error
	Delete(FlowKey) error
	Stats() (map[FlowKey]FlowStats, error)
	Flows() (map[FlowKey]FlowAction, error)
}

// NextHop is how a packet toward an address leaves: the interface, its MAC
// and the next hop's MAC.
type NextHop struct {
	Ifindex        int
	SrcMAC, DstMAC net.HardwareAddr
}

// Resolver finds the next hop toward an address (netlink's route and
// neighbour tables in sbcd, resolver.go).
type Resolver interface {
	Resolve(dst netip.Addr) (NextHop, error)
}

// PathUserSpace is the path of flows the relay forwards itself.
const PathUserSpace = "userspace"

// defaultOffloadTick: how often counters are read, next hops re-resolved,
// and flows retried that could not be installed.
const defaultOffloadTick = time.Second

// offloader reconciles streams' flows with the datapath.
type offloader struct {
	r    *Relay
	dp   Datapath
	res  Resolver
	tick time.Duration
	kick chan struct{}
	stop chan struct{}
	done chan struct{}

	// statsMu serializes counter reads (the tick and the admin API).
	// Lock order: statsMu, then a stream's off.mu.
	statsMu sync.Mutex
	// Packets of flows removed since start, for metrics.
	removedPackets atomic.Uint64

	warnMu sync.Mutex
	warned map[string]bool
}

func newOffloader(r *Relay, dp Datapath, res Resolver, tick time.Duration) *offloader {
	if tick <= 0 {
		tick = defaultOffloadTick
	}
	return &offloader{
		r: r, dp: dp, res: res, tick: tick,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		warned: map[string]bool{},
	}
}

// poke asks for a reconcile soon; never blocks (called from workers).
func (o *offloader) poke() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

func (o *offloader) run() {
	defer close(o.done)
	t := time.NewTicker(o.tick)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-o.kick:
			o.syncAll(false)
		case <-t.C:
			o.syncAll(true)
		}
	}
}

func (o *offloader) close() {
	close(o.stop)
	<-o.done
}

// syncAll reconciles every stream; with counters it first reads every
// flow's kernel counters in one batch.
func (o *offloader) syncAll(counters bool) {
	if counters {
		o.refresh()
	}
	for _, s := range o.r.snapshot() {
		s.syncOffload()
	}
}

// refresh reads the kernel counters of every flow and hands each stream
// its own.
func (o *offloader) refresh() {
	o.statsMu.Lock()
	defer o.statsMu.Unlock()
	st, err := o.dp.Stats()
	if err != nil {
		o.warnOnce("stats", "reading kernel flow counters failed", err)
		return
	}
	for _, s := range o.r.snapshot() {
		s.takeKernelStats(st)
	}
}

func (o *offloader) warnOnce(key, msg string, err error) {
	o.warnMu.Lock()
	defer o.warnMu.Unlock()
	if o.warned[key] {
		return
	}
	o.warned[key] = true
	o.r.log.Warn(msg, "path", o.dp.Path(), "err", err)
}

// streamOffload is a stream's kernel state.
type streamOffload struct {
	mu        sync.Mutex
	userSpace bool // SetUserSpace: never offload
	closed    bool
	flows     map[FlowKey]*kflow // installed
	// Counters of flows removed earlier, per side the packets came from.
	base [2]kcount
	// Counters of installed flows at the last refresh, per side (kept as
	// sums so that Stats need not walk flows).
	cur [2]kcount
}

type kcount struct {
	packets, bytes, rtcp uint64
	lastSeen             time.Time
}

func (k *kcount) add(o kcount) {
	k.packets += o.packets
	k.bytes += o.bytes
	k.rtcp += o.rtcp
	if o.lastSeen.After(k.lastSeen) {
		k.lastSeen = o.lastSeen
	}
}

// kflow is one installed flow.
type kflow struct {
	act   FlowAction
	from  Side // the side whose packets arrive at the key
	rtcp  bool
	stats FlowStats // at the last refresh
}

// SetUserSpace keeps the stream in the user-space relay (on) or lets it be
// offloaded again (off): for streams that need a transform (SRTP<->RTP,
// transcoding) or latching control. Turning it on removes the stream's
// kernel flows before it returns.
func (s *Stream) SetUserSpace(on bool) {
	s.off.mu.Lock()
	s.off.userSpace = on
	s.off.mu.Unlock()
	s.syncOffload()
}

// Offloaded reports how many of the stream's flows are in the kernel.
func (s *Stream) Offloaded() int {
	s.off.mu.Lock()
	defer s.off.mu.Unlock()
	return len(s.off.flows)
}

// wantFlow is a flow the stream should have in the kernel.
type wantFlow struct {
	key  FlowKey
	from Side
	rtcp bool
	in   netip.AddrPort // the only source it is taken from (from's latched source)
	dst  netip.AddrPort // where it goes (the other side's latched source)
	src  netip.AddrPort // the SBC's address facing that side
}

// desired computes the flows the stream should have in the kernel now:
// both directions of RTP once both sides latched their RTP source; both
// directions of RTCP once both latched their RTCP source. rtcp-mux must be
// the same on both sides (a muxed port carries RTCP the kernel could not
// tell apart).
func (s *Stream) desired() []wantFlow {
	var st [2]struct {
		ok, mux    bool
		rtp, rtcp  netip.AddrPort
		sdpRTPPort uint16
	}
	for side := range s.sides {
		sd := &s.sides[side]
		sd.mu.Lock()
		st[side].ok = sd.known && sd.sdpRTP.Port() != 0 && sd.latchRTP.IsValid()
		st[side].mux = sd.mux
		st[side].rtp, st[side].rtcp = sd.latchRTP, sd.latchRTCP
		sd.mu.Unlock()
	}
	if !st[0].ok || !st[1].ok || st[0].mux != st[1].mux {
		return nil
	}
	if family4(s.local[0]) != family4(s.local[1]) {
		// IPv4 on one side, IPv6 on the other: the kernel program only
		// rewrites addresses in place, it does not translate headers, so a
		// flow that crosses families stays in the user-space relay.
		return nil
	}
	var out []wantFlow
	for from := range 2 {
		to := 1 - from
		out = append(out, wantFlow{
			key: FlowKey{s.local[from]}, from: Side(from),
			in: st[from].rtp, src: s.local[to], dst: st[to].rtp,
		})
	}
	if !st[0].mux && st[0].rtcp.IsValid() && st[1].rtcp.IsValid() {
		for from := range 2 {
			to := 1 - from
			out = append(out, wantFlow{
				key: FlowKey{rtcpAddr(s.local[from])}, from: Side(from), rtcp: true,
				in: st[from].rtcp, src: rtcpAddr(s.local[to]), dst: st[to].rtcp,
			})
		}
	}
	return out
}

// family4 reports whether ap is IPv4 (IPv4-mapped IPv6 counts as IPv4, as
// the kernel's flow key does).
func family4(ap netip.AddrPort) bool { return ap.Addr().Unmap().Is4() }

func rtcpAddr(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr(), ap.Port()+1)
}

// syncOffload makes the kernel hold exactly the flows the stream should
// have. A flow whose next hop cannot be resolved yet stays in user space
// (the next tick retries); on any error the stream's flows are removed
// (all or nothing per direction pair would be nicer; removing is safe: the
// relay forwards them).
func (s *Stream) syncOffload() {
	o := s.relay.off
	if o == nil {
		return
	}
	s.off.mu.Lock()
	defer s.off.mu.Unlock()
	var want []wantFlow
	if !s.off.userSpace && !s.off.closed && !s.NeedsTransform() {
		want = s.desired()
	}
	acts := make(map[FlowKey]FlowAction, len(want))
	meta := make(map[FlowKey]wantFlow, len(want))
	for _, w := range want {
		nh, err := o.res.Resolve(w.dst.Addr())
		if err != nil {
			// An installed flow keeps its last next hop: the kernel does
			// not refresh neighbours the fast path alone uses, so their
			// entries may be collected while the MAC is still right.
			if f, ok := s.off.flows[w.key]; ok && f.act.From == w.in && f.act.Src == w.src && f.act.Dst == w.dst {
				acts[w.key], meta[w.key] = f.act, w
			}
			// A new one waits in user space (no neighbour entry yet).
			continue
		}
		acts[w.key] = FlowAction{From: w.in, Src: w.src, Dst: w.dst, SrcMAC: nh.SrcMAC, DstMAC: nh.DstMAC, Ifindex: nh.Ifindex}
		meta[w.key] = w
	}
	// A pair of directions goes to the kernel together or not at all.
	for _, w := range want {
		peer := FlowKey{s.local[w.from.other()]}
		if w.rtcp {
			peer = FlowKey{rtcpAddr(s.local[w.from.other()])}
		}
		if _, ok := acts[peer]; !ok {
			delete(acts, w.key)
		}
	}
	for k, f := range s.off.flows {
		if a, ok := acts[k]; ok && a.equal(f.act) {
			continue
		}
		s.removeFlow(k, f)
	}
	for k, a := range acts {
		if _, ok := s.off.flows[k]; ok {
			continue
		}
		if err := o.dp.Put(k, a); err != nil {
			o.warnOnce("put", "installing a kernel flow failed; the relay keeps it", err)
			continue
		}
		if s.off.flows == nil {
			s.off.flows = map[FlowKey]*kflow{}
		}
		s.off.flows[k] = &kflow{act: a, from: meta[k].from, rtcp: meta[k].rtcp}
	}
}

// removeFlow deletes an installed flow and folds its last counters into
// the stream's base. Called with s.off.mu held.
func (s *Stream) removeFlow(k FlowKey, f *kflow) {
	o := s.relay.off
	if err := o.dp.Delete(k); err != nil {
		o.warnOnce("delete", "removing a kernel flow failed", err)
	}
	c := kcount{packets: f.stats.Packets, bytes: f.stats.Bytes, lastSeen: f.stats.LastSeen}
	if f.rtcp {
		c.rtcp = c.packets
	}
	s.off.base[f.from].add(c)
	s.off.cur[f.from] = kcount{}
	for _, g := range s.off.flows {
		if g != f && g.from == f.from {
			s.off.cur[f.from].add(g.count())
		}
	}
	delete(s.off.flows, k)
	o.removedPackets.Add(f.stats.Packets)
}

func (f *kflow) count() kcount {
	c := kcount{packets: f.stats.Packets, bytes: f.stats.Bytes, lastSeen: f.stats.LastSeen}
	if f.rtcp {
		c.rtcp = c.packets
	}
	return c
}

// takeKernelStats updates the stream's installed flows from a batch read.
// Packets the kernel forwarded keep the stream alive for the media timeout.
func (s *Stream) takeKernelStats(st map[FlowKey]FlowStats) {
	s.off.mu.Lock()
	defer s.off.mu.Unlock()
	if len(s.off.flows) == 0 {
		return
	}
	var cur [2]kcount
	for k, f := range s.off.flows {
		if v, ok := st[k]; ok {
			f.stats = v
		}
		cur[f.from].add(f.count())
	}
	s.off.cur = cur
	for side := range cur {
		if ls := cur[side].lastSeen; !ls.IsZero() {
			d := int64(ls.Sub(s.epoch))
			if d > s.lastPacket.Load() {
				s.lastPacket.Store(d)
			}
		}
	}
}

// kernelDir is what the kernel forwarded from one side, for Stats.
func (s *Stream) kernelDir(side Side) kcount {
	s.off.mu.Lock()
	defer s.off.mu.Unlock()
	k := s.off.base[side]
	k.add(s.off.cur[side])
	return k
}

// closeOffload removes every flow of a closing stream, unless the relay
// keeps them for the next run (KeepKernelFlows).
func (s *Stream) closeOffload() {
	if s.relay.off == nil || s.relay.keepFlows.Load() {
		return
	}
	s.off.mu.Lock()
	s.off.closed = true
	s.off.mu.Unlock()
	s.syncOffload()
}

// FlowInfo is one flow of a stream for the admin API: packets arriving at
// Local from the side's peer, and where they go.
type FlowInfo struct {
	Local    string `json:"local"`
	Side     string `json:"side"`           // "a" or "b": whose packets arrive at Local
	Kind     string `json:"kind"`           // "rtp" or "rtcp" ("rtp" carries both with rtcp-mux)
	Path     string `json:"path"`           // "xdp", "tc" or "userspace"
	From     string `json:"from,omitempty"` // kernel flows: the only source forwarded (the latched peer)
	Src      string `json:"src"`            // the SBC's address packets leave from
	Dst      string `json:"dst,omitempty"`
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	LastSeen string `json:"last_seen,omitempty"`
}

// Flows lists every stream's flows, the kernel's with fresh counters.
func (r *Relay) Flows() []FlowInfo {
	if r.off != nil {
		r.off.refresh()
	}
	var out []FlowInfo
	for _, s := range r.snapshot() {
		out = append(out, s.flows()...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Local < out[j].Local })
	return out
}

func (s *Stream) flows() []FlowInfo {
	var out []FlowInfo
	s.off.mu.Lock()
	kern := make(map[FlowKey]kflow, len(s.off.flows))
	for k, f := range s.off.flows {
		kern[k] = *f
	}
	s.off.mu.Unlock()
	for side := range s.sides {
		sd := &s.sides[side]
		from, to := Side(side), Side(side).other()
		sd.mu.Lock()
		mux := sd.mux
		sd.mu.Unlock()
		packets, bytes, rtcp := sd.packets.Load(), sd.bytes.Load(), sd.rtcpPackets.Load()
		var ls time.Time
		if v := sd.lastSeen.Load(); v != 0 {
			ls = s.epoch.Add(time.Duration(v))
		}
		kinds := []bool{false, true}
		if mux {
			kinds = kinds[:1]
		}
		for _, isRTCP := range kinds {
			key := FlowKey{s.local[from]}
			src := s.local[to]
			fi := FlowInfo{Side: from.Name(), Kind: "rtp", Path: PathUserSpace}
			var d *fwdDest
			if isRTCP {
				key, src, fi.Kind = FlowKey{rtcpAddr(key.Dst)}, rtcpAddr(src), "rtcp"
				d = s.sides[to].rtcpDst.Load()
			} else {
				d = s.sides[to].rtpDst.Load()
			}
			fi.Local, fi.Src = key.Dst.String(), src.String()
			if d != nil {
				fi.Dst = d.addr.String()
			}
			if f, ok := kern[key]; ok {
				fi.Path, fi.Dst = s.relay.off.dp.Path(), f.act.Dst.String()
				if f.act.From.IsValid() {
					fi.From = f.act.From.String()
				}
				fi.Packets, fi.Bytes = f.stats.Packets, f.stats.Bytes
				if !f.stats.LastSeen.IsZero() {
					fi.LastSeen = f.stats.LastSeen.UTC().Format(time.RFC3339Nano)
				}
			} else {
				if isRTCP {
					fi.Packets = rtcp
				} else {
					fi.Packets = packets - rtcp
				}
				if !isRTCP || mux {
					fi.Bytes = bytes
				}
				if !ls.IsZero() {
					fi.LastSeen = ls.UTC().Format(time.RFC3339Nano)
				}
			}
			out = append(out, fi)
		}
	}
	return out
}

// OwnedFlows are the flows the relay's streams should have in the kernel:
// after a restart, once the restored calls' streams have their latched
// sources back, these are the pinned flows to keep.
func (r *Relay) OwnedFlows() map[FlowKey]bool {
	out := map[FlowKey]bool{}
	for _, s := range r.snapshot() {
		s.off.mu.Lock()
		us := s.off.userSpace
		s.off.mu.Unlock()
		if us || s.NeedsTransform() {
			continue
		}
		for _, w := range s.desired() {
			out[w.key] = true
		}
	}
	return out
}

// ErrNoDatapath: a kernel operation on a relay without a datapath.
var ErrNoDatapath = errors.New("media relay has no kernel datapath")

// ReconcileFlows is for start-up: the datapath's pinned flows survived the
// previous sbcd; every one not in owned (the flows the restored calls own,
// see OwnedFlows) is an orphan and is removed. It returns how many were
// kept and removed. Owned flows are then (re)installed by the offloader
// with fresh next hops.
func (r *Relay) ReconcileFlows(owned map[FlowKey]bool) (kept, removed int, err error) {
	if r.off == nil {
		return 0, 0, ErrNoDatapath
	}
	pinned, err := r.off.dp.Flows()
	if err != nil {
		return 0, 0, err
	}
	// Flows the offloader installed meanwhile are owned too.
	installed := map[FlowKey]bool{}
	for _, s := range r.snapshot() {
		s.off.mu.Lock()
		for k := range s.off.flows {
			installed[k] = true
		}
		s.off.mu.Unlock()
	}
	var errs []error
	for k := range pinned {
		if owned[k] || installed[k] {
			kept++
			continue
		}
		if err := r.off.dp.Delete(k); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	for _, s := range r.snapshot() {
		s.syncOffload()
	}
	return kept, removed, errors.Join(errs...)
}

// Path is the relay's kernel path ("xdp", "tc"), or "userspace" without one.
func (r *Relay) Path() string {
	if r.off == nil {
		return PathUserSpace
	}
	return r.off.dp.Path()
}

// snapshot lists the open streams.
func (r *Relay) snapshot() []*Stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Stream, 0, len(r.streams))
	for s := range r.streams {
		out = append(out, s)
	}
	return out
}
