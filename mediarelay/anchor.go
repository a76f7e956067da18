package mediarelay

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RealmMedia is one realm's media face: the SBC's address there, its port
// range, whether its phones may be behind NAT, and the codecs it may offer.
type RealmMedia struct {
	Name    string
	Addr    netip.Addr
	MinPort int
	MaxPort int
	NAT     bool
	Codecs  []string
	SRTP    SRTPPolicy // media security on this realm's legs (srtp_anchor.go)
}

// AnchorConfig configures media anchoring.
type AnchorConfig struct {
	Realms     []RealmMedia
	Timeout    time.Duration // media silence that ends a call
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Relay      Config // the relay's own settings (Logger and Registerer filled in)

	watchEvery time.Duration // how often the media timeout is checked (1s; tests shorten it)
}

// CallRef names a call and the realm of each of its legs.
type CallRef struct {
	ID     string
	Realms [2]string // realm of leg A, leg B
}

// Lock order in mediarelay: a lock on the left may be held while taking
// one on its right, never the reverse.
//
//	anchored.op -> Anchor.mu -> anchored.mu -> Stream.off.mu -> sideState.mu
//	  -> Relay.mu -> worker.mu -> Pool.mu, latchNotes.mu, offloader locks
//
// Waits on a relay worker (NewStream, Stream.Close, Relay.Close,
// Heartbeat) are made holding at most anchored.op: a worker runs a batch
// holding one sideState.mu and takes nothing else but leaf locks
// (latchNotes.mu, metrics), so it can never wait for a goroutine that
// waits for it. Callbacks out of a worker (a latch, an SRTP index moving)
// only mark the call in latchNotes; the anchor's own goroutine tells
// OnChange's f. Goroutines that walk the calls (the media-timeout watch,
// Close) copy them out of Anchor.mu before taking any call's lock.

// Anchor puts every call's media through the SBC: it rewrites each SDP
// offer and answer to the SBC's own address and ports in the realm it goes
// to, and joins the two sides of each media line with a relay stream. It
// knows nothing of SIP: the B2BUA calls Offer, Answer and End.
type Anchor struct {
	relay   *Relay
	realms  map[string]*realmFace
	timeout time.Duration
	every   time.Duration // media-timeout check interval
	log     *slog.Logger

	mu        sync.Mutex // guards calls, ended and onTimeout; never held across a call's lock wait
	calls     map[string]*anchored
	ended     endedCalls
	onTimeout func(callID string)

	onChange atomic.Pointer[func(callID string)] // restore.go; read by the notes goroutine
	notes    latchNotes

	probeMu sync.Mutex    // leaf; guards probe (heartbeat.go)
	probe   chan struct{} // the lock probe still waiting for mu, if any

	stop chan struct{}
	done chan struct{} // closed when watch and the notes goroutine are gone

	exhausted *prometheus.CounterVec
}

type realmFace struct {
	cfg  RealmMedia
	pool *Pool
	// pol is the codecs and SRTP policy for new calls (reload.go); cfg's
	// copies of them are what the face started with.
	pol atomic.Pointer[facePolicy]
}

// anchored is one call's media: per leg, the SBC's ports and SDP origin;
// per media line, a relay stream.
type anchored struct {
	// op serializes what changes the call's media: offer, answer, end.
	// It is the one lock that may be held while waiting for a relay
	// worker (NewStream, Stream.Close): nothing a worker runs takes it.
	op sync.Mutex
	// mu guards the fields below. It is held only for short work and never
	// across a wait on a worker, so the watch, State and Media, which take
	// it, never queue behind a worker.
	mu      sync.Mutex
	ref     CallRef
	legs    [2]legMedia
	streams []*Stream
	sec     [][2]legSec // per media line and leg: SRTP keys and negotiation
	// codecs is per media line the first primary codec of the last SDP
	// either leg sent: the answer's, once there is one (RFC 3264 6).
	codecs []string
	ended  bool
	// undo is the media as it was before the offer in progress, for
	// Rollback (rollback.go); nil once its answer came.
	undo *offerUndo
}

type legMedia struct {
	face    *realmFace
	pol     *facePolicy // the face's when the call began: a reload changes new calls only
	ports   []int       // the SBC's RTP port per m= line on this leg (0: none)
	sessID  string
	version uint64
	dir     []string // last direction this leg's SDP gave per m= line
}

// NewAnchor builds the port pools and the relay.
func NewAnchor(cfg AnchorConfig) (*Anchor, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	rc := cfg.Relay
	rc.Logger, rc.Registerer = cfg.Logger, cfg.Registerer
	relay, err := NewRelay(rc)
	if err != nil {
		return nil, err
	}
	a := &Anchor{
		relay: relay, realms: map[string]*realmFace{}, timeout: cfg.Timeout, log: cfg.Logger,
		calls: map[string]*anchored{}, stop: make(chan struct{}), done: make(chan struct{}),
		exhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbc_media_ports_exhausted_total", Help: "Offers refused (503) because a realm's media port pool was empty.",
		}, []string{"realm"}),
	}
	for _, r := range cfg.Realms {
		p, err := NewPool(r.Addr, r.MinPort, r.MaxPort)
		if err != nil {
			relay.Close()
			return nil, fmt.Errorf("realm %s media ports: %w", r.Name, err)
		}
		f := &realmFace{cfg: r, pool: p}
		f.pol.Store(&facePolicy{codecs: r.Codecs, srtp: r.SRTP})
		a.realms[r.Name] = f
	}
	if cfg.Registerer != nil {
		inUse := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sbc_media_ports_in_use", Help: "RTP/RTCP port pairs allocated, by realm."}, []string{"realm"})
		cfg.Registerer.MustRegister(a.exhausted, prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
			for name, f := range a.realms {
				inUse.WithLabelValues(name).Set(float64(f.pool.InUse()))
			}
			inUse.Collect(ch)
		}))
	}
	if a.timeout <= 0 {
		a.timeout = 30 * time.Second
	}
	a.every = cfg.watchEvery
	if a.every <= 0 {
		a.every = time.Second
	}
	a.notes.wake = make(chan struct{}, 1)
	watched, told := make(chan struct{}), make(chan struct{})
	go func() { a.watch(); close(watched) }()
	go func() { a.tell(); close(told) }()
	go func() { <-watched; <-told; close(a.done) }()
	return a, nil
}

// OnTimeout sets what to do when a call's media has been silent too long.
func (a *Anchor) OnTimeout(f func(callID string)) {
	a.mu.Lock()
	a.onTimeout = f
	a.mu.Unlock()
}

// Close stops the timeout watch and every stream.
func (a *Anchor) Close() error {
	close(a.stop)
	<-a.done
	a.mu.Lock()
	calls := make([]string, 0, len(a.calls))
	for id := range a.calls {
		calls = append(calls, id)
	}
	a.mu.Unlock()
	for _, id := range calls {
		a.End(id)
	}
	return a.relay.Close()
}

func (a *Anchor) call(ref CallRef) (*anchored, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.calls[ref.ID]; ok {
		return c, nil
	}
	if a.ended.has(ref.ID, time.Now()) {
		// A late offer or answer (a re-INVITE's 200 that crossed the
		// BYE): making the call again would take ports nobody frees.
		return nil, errCallEnded
	}
	c := &anchored{ref: ref}
	for s := range c.legs {
		f, ok := a.realms[ref.Realms[s]]
		if !ok {
			return nil, fmt.Errorf("media: no media config for realm %q", ref.Realms[s])
		}
		c.legs[s] = legMedia{face: f, pol: f.pol.Load(), sessID: strconv.FormatInt(time.Now().UnixNano()%1e12, 10), version: 1}
	}
	a.calls[ref.ID] = c
	return c, nil
}

// Offer rewrites an offer that arrived on leg from for the other leg,
// allocating the SBC's ports on both legs for each new media line.
func (a *Anchor) Offer(ref CallRef, from Side, sdp []byte) ([]byte, error) {
	return a.rewrite(ref, from, sdp, false)
}

// Answer rewrites an answer that arrived on leg from for the other leg.
func (a *Anchor) Answer(ref CallRef, from Side, sdp []byte) ([]byte, error) {
	return a.rewrite(ref, from, sdp, true)
}

// errCallEnded: an offer or answer for a call whose media has ended.
var errCallEnded = errors.New("media: call already ended")

// rewrite is the same for offers and answers: learn where leg from's media
// is, make sure both legs have ports and a stream per media line, and write
// the SDP the other leg sees.
func (a *Anchor) rewrite(ref CallRef, from Side, body []byte, answer bool) ([]byte, error) {
	c, err := a.call(ref)
	if err != nil {
		return nil, err
	}
	sess, err := ParseSDP(body)
	if err != nil {
		return nil, err
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return nil, errCallEnded
	}
	var sec secPlan
	if answer {
		c.undo = nil // the offer is answered: nothing to roll back to
		sec, err = a.secureAnswer(c, sess, from)
	} else {
		c.snapshotLocked()
		sec, err = a.secureOffer(c, sess, from)
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	// New streams first, without mu: NewStream waits for the workers.
	for i, m := range sess.Media {
		if m.Port != 0 && (sec.reject == nil || !sec.reject[i]) {
			if err := a.ensureStream(c, i); err != nil {
				return nil, err
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	to := from.other()
	for i, m := range sess.Media {
		if m.Port == 0 || (sec.reject != nil && sec.reject[i]) {
			if i < len(c.streams) && c.streams[i] != nil {
				c.streams[i].SetRemote(from, netip.AddrPort{}, netip.AddrPort{}, false)
			}
			continue
		}
		st := c.streams[i]
		rtp := netip.AddrPortFrom(m.Addr, uint16(m.Port))
		rtcp := netip.AddrPortFrom(m.Addr, uint16(m.RTCPPort))
		if m.RTCPMux {
			rtcp = rtp
		}
		st.SetRemote(from, rtp, rtcp, c.legs[from].face.cfg.NAT)
		if sec.hold != nil && sec.hold[i] {
			st.SetSRTPPending(true)
		}
		st.SetClockRate(clockRate(m))
		c.setCodec(i, m)
		setDir(&c.legs[from], i, m.Direction, m.Addr)
		st.SetHold(onHold(c, i))
	}
	out := &c.legs[to]
	ports := make([]int, len(sess.Media))
	copy(ports, out.ports)
	for i := range ports {
		if sec.reject != nil && sec.reject[i] {
			ports[i] = 0
		}
	}
	out.version++
	res, _, err := RewriteSDP(body, Rewrite{
		Addr: out.face.cfg.Addr, Ports: ports, Codecs: out.pol.codecs,
		SessID: out.sessID, Version: out.version, Username: "EdgeSBC",
		Proto: sec.proto, Crypto: sec.crypto,
	})
	if err != nil {
		return nil, err
	}
	if err := c.commitSec(sec); err != nil {
		return nil, err
	}
	return res, nil
}

// ensureStream gives media line i ports on both legs and a relay stream.
// Called with c.op held and c.mu not: it takes c.mu itself around the
// call's fields and waits for the workers in NewStream without it.
func (a *Anchor) ensureStream(c *anchored, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.streams) <= i {
		c.streams = append(c.streams, nil)
	}
	if c.streams[i] != nil {
		return nil
	}
	var local [2]netip.AddrPort
	for s := range c.legs {
		l := &c.legs[s]
		for len(l.ports) <= i {
			l.ports = append(l.ports, 0)
		}
		if l.ports[i] == 0 {
			p, err := l.face.pool.Alloc()
			if err != nil {
				a.exhausted.WithLabelValues(l.face.cfg.Name).Inc()
				return fmt.Errorf("realm %s: %w", l.face.cfg.Name, err)
			}
			l.ports[i] = p
		}
		local[s] = netip.AddrPortFrom(l.face.cfg.Addr, uint16(l.ports[i]))
	}
	// The ports are the call's now (End frees them, and End waits for
	// c.op), so the stream may be built without mu.
	c.mu.Unlock()
	st, err := a.relay.NewStream(local[SideA], local[SideB])
	c.mu.Lock()
	if err != nil {
		return fmt.Errorf("%w: %v <-> %v: %w", ErrStreamUnavailable, local[SideA], local[SideB], err)
	}
	c.streams[i] = st
	st.setOnLatch(a.latchHook(c.ref.ID))
	return nil
}

func setDir(l *legMedia, i int, dir string, addr netip.Addr) {
	for len(l.dir) <= i {
		l.dir = append(l.dir, "sendrecv")
	}
	if addr.IsUnspecified() {
		dir = "inactive" // RFC 2543 hold: c=0.0.0.0
	}
	if dir == "" {
		dir = "sendrecv"
	}
	l.dir[i] = dir
}

// onHold: a stream one side has put on hold (sendonly, recvonly or
// inactive) may legitimately go quiet, so it does not count for timeout.
func onHold(c *anchored, i int) bool {
	for _, l := range c.legs {
		if i < len(l.dir) && l.dir[i] != "sendrecv" {
			return true
		}
	}
	return false
}

// setCodec notes media line i's codec from SDP m. c.mu held.
func (c *anchored) setCodec(i int, m Media) {
	for len(c.codecs) <= i {
		c.codecs = append(c.codecs, "")
	}
	for _, pt := range m.Formats {
		if name := m.Codecs[pt]; name != "" && !auxCodec[name] {
			c.codecs[i] = name
			return
		}
	}
}

func clockRate(m Media) int {
	if m.Kind == "video" {
		return 90000
	}
	for _, pt := range m.Formats {
		if name := m.Codecs[pt]; name != "" && name != "telephone-event" {
			if name == "opus" {
				return 48000
			}
			return 8000
		}
	}
	return 8000
}

// End releases a call's streams and ports and logs its media quality.
func (a *Anchor) End(callID string) {
	a.mu.Lock()
	c, ok := a.calls[callID]
	delete(a.calls, callID)
	a.ended.add(callID, time.Now())
	a.mu.Unlock()
	if !ok {
		return
	}
	c.op.Lock() // an offer in NewStream finishes first
	defer c.op.Unlock()
	info := a.info(c) // before the streams close
	c.mu.Lock()
	c.ended = true
	streams := c.streams
	c.mu.Unlock()
	// Close waits for the workers: with op held only, as the lock order says.
	for _, st := range streams {
		if st != nil {
			st.Close()
		}
	}
	for _, l := range c.legs {
		for _, p := range l.ports {
			if p != 0 {
				l.face.pool.Free(p)
			}
		}
	}
	if len(info.Streams) > 0 {
		a.log.Info("call media", "call", callID, "mos", info.MOS, "streams", len(info.Streams),
			"packets_a", info.packets(SideA), "packets_b", info.packets(SideB), "lost", info.lost())
	}
}

// endedCalls remembers the calls End ended, so that an offer or answer
// arriving after it (call) does not anchor them again. Bounded in time and
// size: an answer can come no later than its INVITE transaction's Timer C
// (3 minutes, RFC 3261 16.6), so an entry lives endedTTL; past maxEnded
// entries the oldest go first (64 Ki IDs: a few MB, several minutes of
// calls at hundreds per second). Guarded by Anchor.mu.
type endedCalls struct {
	at    map[string]time.Time
	order []string // FIFO of the IDs in at, oldest first
}

const (
	endedTTL = 4 * time.Minute
	maxEnded = 1 << 16
)

func (e *endedCalls) add(id string, now time.Time) {
	if e.at == nil {
		e.at = map[string]time.Time{}
	}
	if _, ok := e.at[id]; ok {
		return
	}
	e.expire(now)
	if len(e.order) >= maxEnded {
		e.pop()
	}
	e.at[id] = now
	e.order = append(e.order, id)
}

func (e *endedCalls) has(id string, now time.Time) bool {
	t, ok := e.at[id]
	return ok && now.Sub(t) < endedTTL
}

// expire drops the entries older than endedTTL.
func (e *endedCalls) expire(now time.Time) {
	for len(e.order) > 0 && now.Sub(e.at[e.order[0]]) >= endedTTL {
		e.pop()
	}
}

func (e *endedCalls) pop() {
	delete(e.at, e.order[0])
	e.order[0] = ""
	e.order = e.order[1:] // append moves it to a new array as it fills
}

// watch ends calls whose media stayed silent for the timeout.
func (a *Anchor) watch() {
	t := time.NewTicker(a.every)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		// Copy the calls out first: a call's lock is never waited for
		// under Anchor.mu.
		a.mu.Lock()
		f := a.onTimeout
		calls := make([]*anchored, 0, len(a.calls))
		for _, c := range a.calls {
			calls = append(calls, c)
		}
		a.mu.Unlock()
		if f == nil {
			continue
		}
		for _, c := range calls {
			if c.silentFor(a.timeout) {
				f(c.ref.ID)
			}
		}
	}
}

func (c *anchored) silentFor(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, st := range c.streams {
		if st == nil {
			continue
		}
		n++
		if st.Idle() < d {
			return false
		}
	}
	return n > 0
}

// StreamInfo is one media line of a call, for the admin API.
type StreamInfo struct {
	Index  int     `json:"index"`
	LocalA string  `json:"local_a"`
	LocalB string  `json:"local_b"`
	FromA  DirInfo `json:"from_a"`
	FromB  DirInfo `json:"from_b"`
	OnHold bool    `json:"on_hold"`
	// Path forwards the stream: "xdp" or "tc" once offloaded to the
	// kernel, else "userspace".
	Path string `json:"path"`
	// Codec is the stream's codec (lower-case encoding name).
	Codec string `json:"codec,omitempty"`
	// SRTP suite on each leg ("" = plain RTP); never a key.
	SRTPA string `json:"srtp_a,omitempty"`
	SRTPB string `json:"srtp_b,omitempty"`
}

// DirInfo is what the SBC received from one side of a stream.
type DirInfo struct {
	Latched            string  `json:"latched,omitempty"`
	Packets            uint64  `json:"packets"`
	Bytes              uint64  `json:"bytes"`
	Forwarded          uint64  `json:"forwarded"`
	Dropped            uint64  `json:"dropped"`
	Lost               int64   `json:"lost"`
	JitterMs           float64 `json:"jitter_ms"`
	RemoteFractionLost float64 `json:"remote_fraction_lost"`
	RemoteJitterMs     float64 `json:"remote_jitter_ms"`
	SRTPAuthFailed     uint64  `json:"srtp_auth_failed,omitempty"`
	SRTPReplayed       uint64  `json:"srtp_replayed,omitempty"`
	SRTPMalformed      uint64  `json:"srtp_malformed,omitempty"`
	LastSeen           string  `json:"last_seen,omitempty"`
}

// CallMedia is a call's media for the admin API: each stream, and a MOS
// estimate from the worst direction.
type CallMedia struct {
	MOS     float64      `json:"mos"`
	Streams []StreamInfo `json:"streams"`
}

func (m CallMedia) packets(s Side) uint64 {
	var n uint64
	for _, st := range m.Streams {
		if s == SideA {
			n += st.FromA.Packets
		} else {
			n += st.FromB.Packets
		}
	}
	return n
}

func (m CallMedia) lost() int64 {
	var n int64
	for _, st := range m.Streams {
		n += st.FromA.Lost + st.FromB.Lost
	}
	return n
}

// Media returns a call's media, if it has any.
func (a *Anchor) Media(callID string) (CallMedia, bool) {
	a.mu.Lock()
	c, ok := a.calls[callID]
	a.mu.Unlock()
	if !ok {
		return CallMedia{}, false
	}
	return a.info(c), true
}

func (a *Anchor) info(c *anchored) CallMedia {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := CallMedia{MOS: 4.5}
	worst := math.Inf(1)
	for i, st := range c.streams {
		if st == nil {
			continue
		}
		s := st.Stats()
		si := StreamInfo{
			Index:  i,
			LocalA: netip.AddrPortFrom(c.legs[SideA].face.cfg.Addr, uint16(c.legs[SideA].ports[i])).String(),
			LocalB: netip.AddrPortFrom(c.legs[SideB].face.cfg.Addr, uint16(c.legs[SideB].ports[i])).String(),
			FromA:  dirInfo(s.A), FromB: dirInfo(s.B), OnHold: onHold(c, i),
			Path: st.Path(),
		}
		si.SRTPA, si.SRTPB = c.srtpInfo(i)
		if i < len(c.codecs) {
			si.Codec = c.codecs[i]
		}
		out.Streams = append(out.Streams, si)
		for _, d := range []DirStats{s.A, s.B} {
			if d.Packets == 0 {
				continue
			}
			loss := 0.0
			if d.Lost > 0 {
				loss = 100 * float64(d.Lost) / float64(d.Packets+uint64(d.Lost))
			}
			worst = math.Min(worst, MOS(loss, d.JitterMs, 0))
		}
	}
	if !math.IsInf(worst, 1) {
		out.MOS = math.Round(worst*100) / 100
	} else {
		out.MOS = 0 // no media at all
	}
	return out
}

func dirInfo(d DirStats) DirInfo {
	di := DirInfo{
		Packets: d.Packets, Bytes: d.Bytes, Forwarded: d.Forwarded, Dropped: d.Dropped, Lost: d.Lost,
		SRTPAuthFailed: d.SRTPAuthFailed, SRTPReplayed: d.SRTPReplayed, SRTPMalformed: d.SRTPMalformed,
		JitterMs: round2(d.JitterMs), RemoteFractionLost: round2(d.RemoteFractionLost), RemoteJitterMs: round2(d.RemoteJitterMs),
	}
	if d.Latched.IsValid() {
		di.Latched = d.Latched.String()
	}
	if !d.LastSeen.IsZero() {
		di.LastSeen = d.LastSeen.UTC().Format(time.RFC3339Nano)
	}
	return di
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }
