package sbc

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/edgesbc/edgesbc/mediarelay"
)

// CallStore keeps call records: ha.Node in production (replicated by Raft,
// or a single node persisting locally), a map in tests. Put and Delete may
// block until the write is committed; the SBC never calls them on a call's
// path, only from its record writers.
type CallStore interface {
	Put(key string, val []byte) error
	Delete(key string) error
	Range(f func(key string, val []byte) bool)
}

// mediaState is implemented by media hooks whose state can be recorded
// and restored (mediarelay.Anchor).
type mediaState interface {
	State(callID string) (mediarelay.CallState, bool)
	Restore(st mediarelay.CallState) error
	OnChange(f func(callID string))
}

// recordWriters is how many record writes may be in flight at once: the
// store batches concurrent writes into one Raft entry and one fsync, so a
// few writers in parallel are what keeps up with a high call rate.
const recordWriters = 256

// recorder writes call records off the call's path. A call is marked when
// it changes; a writer later encodes its state as it is then and puts it.
// Marks of a call not yet written collapse into one write, and one call is
// never written by two writers at once, so its Put and Delete reach the
// store in order.
type recorder struct {
	src   recordSource
	store CallStore
	log   *slog.Logger

	mu       sync.Mutex
	cond     *sync.Cond
	pending  map[string]recOp // call ID -> what to do next
	queue    []string         // IDs in pending and not in flight, oldest first
	inflight map[string]bool
	closed   bool
	idle     *sync.Cond // broadcast when the queue and flight are empty
	wg       sync.WaitGroup

	puts, deletes, errs prometheus.Counter
	queued              prometheus.GaugeFunc
	restored, bad       prometheus.Counter
	latency             prometheus.Histogram
}

// recordSource is what the recorder needs of the B2BUA: a call's record
// as of now, false when the call is not (or no longer) established.
type recordSource interface {
	snapshotCall(c *Call) (*callRecord, bool)
}

type recOp struct {
	call *Call // nil: delete
	at   time.Time
}

func newRecorder(src recordSource, store CallStore, reg prometheus.Registerer, log *slog.Logger) *recorder {
	r := &recorder{src: src, store: store, log: log, pending: map[string]recOp{}, inflight: map[string]bool{}}
	r.cond = sync.NewCond(&r.mu)
	r.idle = sync.NewCond(&r.mu)
	r.puts = prometheus.NewCounter(prometheus.CounterOpts{Name: "sbc_ha_record_writes_total", Help: "Call records written to the HA store."})
	r.deletes = prometheus.NewCounter(prometheus.CounterOpts{Name: "sbc_ha_record_deletes_total", Help: "Call records deleted from the HA store."})
	r.errs = prometheus.NewCounter(prometheus.CounterOpts{Name: "sbc_ha_record_errors_total", Help: "Call record writes or deletes the HA store refused (not leader, store closed)."})
	r.restored = prometheus.NewCounter(prometheus.CounterOpts{Name: "sbc_ha_calls_restored_total", Help: "Calls restored from the HA store on taking over."})
	r.bad = prometheus.NewCounter(prometheus.CounterOpts{Name: "sbc_ha_records_bad_total", Help: "Call records that could not be decoded or restored."})
	r.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sbc_ha_record_write_seconds", Help: "From a call's change to its record committed in the HA store.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	r.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sbc_ha_record_queue", Help: "Call records waiting to be written."}, func() float64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return float64(len(r.pending))
	})
	reg.MustRegister(r.puts, r.deletes, r.errs, r.restored, r.bad, r.latency, r.queued)
	return r
}

// start runs the writers; close stops them.
func (r *recorder) start() {
	for range recordWriters {
		r.wg.Add(1)
		go r.writer()
	}
}

// mark queues a write of the call's record.
func (r *recorder) mark(c *Call) { r.enqueue(c.ID, recOp{call: c, at: time.Now()}) }

// forget queues the deletion of the call's record.
func (r *recorder) forget(id string) { r.enqueue(id, recOp{at: time.Now()}) }

func (r *recorder) enqueue(id string, op recOp) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if old, ok := r.pending[id]; ok {
		if old.call == nil {
			return // a deletion is final: a late change (a latch) cannot undo it
		}
		op.at = old.at // the older change is what waits longest
		r.pending[id] = op
		return
	}
	r.pending[id] = op
	if !r.inflight[id] {
		r.queue = append(r.queue, id)
		r.cond.Signal()
	}
}

func (r *recorder) writer() {
	defer r.wg.Done()
	r.mu.Lock()
	for {
		for len(r.queue) == 0 && !r.closed {
			r.cond.Wait()
		}
		if len(r.queue) == 0 {
			r.mu.Unlock()
			return
		}
		id := r.queue[0]
		r.queue = r.queue[1:]
		op := r.pending[id]
		delete(r.pending, id)
		r.inflight[id] = true
		r.mu.Unlock()

		r.apply(id, op)

		r.mu.Lock()
		delete(r.inflight, id)
		if _, ok := r.pending[id]; ok {
			r.queue = append(r.queue, id)
			r.cond.Signal()
		}
		if len(r.pending) == 0 && len(r.inflight) == 0 {
			r.idle.Broadcast()
		}
	}
}

func (r *recorder) apply(id string, op recOp) {
	var err error
	if op.call == nil {
		if err = r.store.Delete(recordKey(id)); err == nil {
			r.deletes.Inc()
		}
	} else {
		rec, ok := r.src.snapshotCall(op.call)
		if !ok {
			// Ended meanwhile: its deletion is queued, or was dropped as
			// final before this write (then this write must not happen).
			return
		}
		if err = r.store.Put(recordKey(id), encodeRecord(rec)); err == nil {
			r.puts.Inc()
		}
	}
	if err != nil {
		r.errs.Inc()
		r.log.Debug("call record not written", "call", id, "error", err)
		return
	}
	r.latency.Observe(time.Since(op.at).Seconds())
}

// flush waits until every queued record is written, or ctx ends.
func (r *recorder) flush(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		r.mu.Lock()
		for len(r.pending) > 0 || len(r.inflight) > 0 {
			r.idle.Wait()
		}
		r.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		r.mu.Lock()
		r.idle.Broadcast()
		r.mu.Unlock()
		return ctx.Err()
	}
}

// close stops the writers after what is queued is written (bounded by ctx).
func (r *recorder) close(ctx context.Context) {
	_ = r.flush(ctx)
	r.mu.Lock()
	r.closed = true
	r.queue = nil
	r.cond.Broadcast()
	r.mu.Unlock()
	r.wg.Wait()
}

// changed records a call's new state, if it is established and records
// are kept. Never blocks on the store.
func (s *SBC) changed(c *Call) {
	if s.rec == nil {
		return
	}
	c.mu.Lock()
	ok := c.state == StateConfirmed && !c.abandoned
	if ok {
		c.recorded = true
	}
	c.mu.Unlock()
	if ok {
		s.rec.mark(c)
	}
}

// recordEnded deletes an ended call's record, unless the call was
// abandoned to another node (its record is theirs now).
func (s *SBC) recordEnded(c *Call) {
	if s.rec == nil {
		return
	}
	c.mu.Lock()
	del := c.recorded && !c.abandoned
	c.mu.Unlock()
	if del {
		s.rec.forget(c.ID)
	}
}

// onMediaChange is the media hook telling that a call's media changed
// outside SIP (a stream latched). It runs on a relay worker.
func (s *SBC) onMediaChange(callID string) {
	if c := s.calls.byID(callID); c != nil {
		s.changed(c)
	}
}

// snapshotCall is a call's record as of now; false when it is not (or no
// longer) established.
func (s *SBC) snapshotCall(c *Call) (*callRecord, bool) {
	c.mu.Lock()
	if c.state != StateConfirmed || c.abandoned || c.b == nil {
		c.mu.Unlock()
		return nil, false
	}
	rec := &callRecord{ID: c.ID, Route: c.route, Start: c.Start, Answered: c.answered, State: c.state}
	for i, l := range []*Leg{c.a, c.b} {
		rec.Legs[i] = legRecord{
			Realm: l.realm.Name, Transport: l.local.Transport, Dialog: l.d,
			CSeq: l.cseq, RemoteCSeq: l.remoteCSeq, Peer: l.peer,
		}
	}
	c.mu.Unlock()
	if ms, ok := s.media.(mediaState); ok {
		if st, ok := ms.State(c.ID); ok {
			rec.Media = &st
		}
	}
	return rec, true
}

// Restore rebuilds every call in the store into the call table and the
// media relay: each leg's dialog (Call-ID, tags, CSeqs, route set, remote
// target), and its media on the same ports with the same latched peers.
// In-dialog requests from either side are then answered and relayed as
// before. A call already in the table is left as it is. It returns how
// many calls were restored and how many records were refused.
func (s *SBC) Restore() (restored, bad int) {
	if s.store == nil {
		return 0, 0
	}
	type kv struct {
		k string
		v []byte
	}
	var recs []kv
	s.store.Range(func(k string, v []byte) bool {
		if strings.HasPrefix(k, recordPrefix) {
			recs = append(recs, kv{k, v})
		}
		return true
	})
	for _, r := range recs {
		rec, err := decodeRecord(r.v)
		if err == nil && recordKey(rec.ID) != r.k {
			err = fmt.Errorf("%w: key %q holds call %s", errRecord, r.k, rec.ID)
		}
		if err == nil {
			err = s.restoreCall(rec)
		}
		if err != nil {
			bad++
			s.rec.bad.Inc()
			s.log.Warn("call record not restored", "key", r.k, "error", err)
			continue
		}
		restored++
	}
	s.rec.restored.Add(float64(restored))
	return restored, bad
}

func (s *SBC) restoreCall(rec *callRecord) error {
	if s.calls.byID(rec.ID) != nil {
		return nil
	}
	if rec.State != StateConfirmed {
		return fmt.Errorf("call %s: state %v is not restorable", rec.ID, rec.State)
	}
	var legs [2]*Leg
	for i := range rec.Legs {
		lr := &rec.Legs[i]
		realm, ok := s.realms[lr.Realm]
		if !ok {
			return fmt.Errorf("call %s: unknown realm %q", rec.ID, lr.Realm)
		}
		for _, ref := range s.calls.lookupAll(lr.Dialog.CallID) {
			if ref.call.ID != rec.ID {
				return fmt.Errorf("call %s: Call-ID of leg %s belongs to call %s", rec.ID, sideName(Side(i)), ref.call.ID)
			}
		}
		legs[i] = &Leg{
			side: Side(i), realm: realm, d: lr.Dialog, local: restoredLocal(realm, *lr),
			cseq: lr.CSeq, remoteCSeq: lr.RemoteCSeq, peer: lr.Peer,
		}
	}
	// Identity crosses restored calls too (identity.go); the INVITE's
	// digest proof and number rules are not in the record: in-dialog
	// requests carry no PPI to assert, and numbers stay as they are.
	if legs[0] != nil && legs[1] != nil {
		legs[0].local.From, legs[1].local.From = originOf(legs[1].realm), originOf(legs[0].realm)
	}
	c := &Call{
		ID: rec.ID, Start: rec.Start, route: rec.Route, a: legs[0], b: legs[1],
		state: StateConfirmed, answered: rec.Answered, done: make(chan struct{}), recorded: true,
	}
	c.media = mediarelay.CallRef{ID: c.ID, Realms: [2]string{legs[0].realm.Name, legs[1].realm.Name}}
	if rec.Media != nil {
		if rec.Media.Ref.Realms != c.media.Realms {
			return fmt.Errorf("call %s: media realms %v differ from the legs' %v", rec.ID, rec.Media.Ref.Realms, c.media.Realms)
		}
		ms, ok := s.media.(mediaState)
		if !ok {
			return fmt.Errorf("call %s: has media but media anchoring is off", rec.ID)
		}
		if err := ms.Restore(*rec.Media); err != nil {
			return err
		}
	}
	if !s.track(c) {
		return fmt.Errorf("call %s: Call-ID %s is shared by too many calls", rec.ID, c.a.d.CallID)
	}
	s.calls.addLeg(c, SideB, c.b.d.CallID)
	return nil
}

// Standby reports whether the SBC is fenced: it serves nothing.
func (s *SBC) Standby() bool { return s.standby.Load() }

// TakeOver restores every call from the store into the call table and the
// media relay (listeners and media sockets are bound with IP_FREEBIND, so
// the VIPs need not be up yet); the SBC still serves no SIP.
func (s *SBC) TakeOver() (restored, bad int) {
	start := time.Now()
	restored, bad = s.Restore()
	s.log.Info("calls restored", "restored", restored, "bad_records", bad, "took", time.Since(start).Round(time.Microsecond))
	return restored, bad
}

// Serve starts answering SIP. An HA node calls it once it holds every
// VIP: a request taken on one realm's VIP before the other realm's is up
// could not be relayed, and is better left to the sender's retransmission.
func (s *SBC) Serve() {
	s.standby.Store(false)
	s.log.Info("active: serving SIP")
}

// Deactivate fences this node at once: it stops serving SIP (every packet
// is dropped from now on) and lets go of every call without a word to the
// peers, since the new active node owns them and their records now. The
// caller drops the VIPs (ha.ReleaseVIPs).
func (s *SBC) Deactivate() {
	s.standby.Store(true)
	n := s.abandonAll("fenced")
	s.log.Warn("standby: stopped serving, calls left to the active node", "calls", n)
}

// abandonAll ends every call here without BYE and without deleting its
// record.
func (s *SBC) abandonAll(result string) int {
	calls := s.calls.snapshot()
	for _, c := range calls {
		c.mu.Lock()
		c.abandoned = true
		cancel := c.cancelSetup
		c.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		c.end(result, "")
	}
	return len(calls)
}

// freeBindControl sets IP_FREEBIND on a listener, so an HA node can bind
// its SIP sockets to the VIPs before it holds them (and the standby can
// keep them bound while it does not). IP_FREEBIND is per socket; the
// alternative, net.ipv4.ip_nonlocal_bind, would change the whole network
// namespace for every program in it.
func freeBindControl(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
	}); err != nil {
		return err
	}
	return serr
}

func (r *Realm) listenConfig(freeBind bool) *net.ListenConfig {
	lc := &net.ListenConfig{}
	if freeBind {
		lc.Control = freeBindControl
	}
	return lc
}

// listenUDP and listenTCP bind the realm's sockets, with IP_FREEBIND in
// HA mode.
func (r *Realm) listenUDP(freeBind bool) (*net.UDPConn, error) {
	pc, err := r.listenConfig(freeBind).ListenPacket(context.Background(), "udp", r.cfg.Listen)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

func (r *Realm) listenTCP(freeBind bool) (net.Listener, error) {
	return r.listenConfig(freeBind).Listen(context.Background(), "tcp", r.cfg.Listen)
}
