// Package sbc is the back-to-back user agent: it owns the realms and their
// listeners, maps each call's leg A to its leg B, keeps the call table, and
// drives every call from INVITE to BYE. It does not parse SDP (that is the
// MediaHook's job) and does not touch media sockets.
package sbc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/policy"
)

// Options are the parts of an SBC that are not configuration.
type Options struct {
	Logger *slog.Logger
	Media  MediaHook
	// Registry takes the SBC's metrics; a new one when nil. Pass one to
	// gather the media relay's metrics in the same place.
	Registry *prometheus.Registry
	// HA (replicate.go): Store keeps a record of every established call;
	// Standby starts the SBC fenced, serving nothing until Serve;
	// FreeBind binds the SIP listeners with IP_FREEBIND (VIPs).
	Store    CallStore
	Standby  bool
	FreeBind bool
	// Recorder takes each call's detail record (cdr.go); nil: none.
	Recorder CallRecorder
	// Clock is the time the guard's rate limiters, strike counts, bans and
	// admission (realm and trunk) read; time.Now when nil. Tests pass a
	// fake clock so that a bucket's refill is theirs to decide.
	Clock policy.Clock
}

// SBC is one running B2BUA.
type SBC struct {
	cfg      *config.Config
	log      *slog.Logger
	pol      atomic.Pointer[policySnap] // routes and dial plan for new calls (reload.go)
	realms   map[string]*Realm
	order    []*Realm
	calls    *callTable
	metrics  *Metrics
	media    MediaHook
	guard    *guard
	trunks   *trunkSet        // trunk.go
	hep      *hepTap          // hep.go: nil when tracing is off
	overload *overloadControl // overload.go: nil when off
	// challenges: relayed 401/407s waiting for the caller's retry (authrelay.go)
	challenges challengeStore

	handlers handlerRuns // progress.go: the watchdog's SIP check

	recorder CallRecorder // nil: no call records (cdr.go)
	store    CallStore    // nil: no HA, no persistence
	rec      *recorder    // writes call records to store
	standby  atomic.Bool  // fenced: every packet dropped
	drained  atomic.Bool  // new calls refused (drain.go)
	freeBind bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // call goroutines that outlive a handler
	// drainMu and draining: once Close starts waiting on wg, nothing more
	// is added to it (see finish).
	drainMu  sync.Mutex
	draining bool
}

// New builds an SBC from a validated config. Nothing is bound until Start.
func New(cfg *config.Config, opt Options) (*SBC, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Media == nil {
		opt.Media = PassThroughMedia{}
	}
	s := &SBC{
		cfg: cfg, log: opt.Logger, media: opt.Media,
		realms: map[string]*Realm{}, calls: newCallTable(), metrics: newMetrics(opt.Registry),
	}
	if h, ok := opt.Media.(mediaTimeouts); ok {
		h.OnTimeout(s.onMediaTimeout)
	}
	s.store, s.freeBind, s.recorder = opt.Store, opt.FreeBind, opt.Recorder
	s.standby.Store(opt.Standby)
	if s.store != nil {
		s.rec = newRecorder(s, s.store, s.metrics.Registry, s.log)
		if h, ok := opt.Media.(mediaState); ok {
			h.OnChange(s.onMediaChange)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.guard = newGuard(cfg, s, s.metrics, s.log)
	s.guard.now = opt.Clock
	s.overload = newOverloadControl(cfg.Overload, s.metrics.Registry, opt.Clock)
	setLingerOnce(cfg.SIP.TransactionLinger.Std()) // sipgo_timers.go
	if err := s.setupHEP(); err != nil {
		s.cancel()
		return nil, err
	}
	for _, rc := range cfg.Realms {
		r, err := newRealm(s, rc)
		if err != nil {
			s.cancel()
			s.closeRealms()
			return nil, err
		}
		s.realms[r.Name] = r
		s.order = append(s.order, r)
		s.register(r)
	}
	if err := s.setupTrunks(); err != nil {
		s.cancel()
		s.closeRealms()
		return nil, err
	}
	s.classifyTrunks()
	s.guard.staticPeers = func(realm string) []netip.Prefix { return s.policy().peers[realm] }
	// Goroutines start only once nothing can fail: an error above leaves
	// nothing running (TestNewFailureLeaksNothing).
	if s.rec != nil {
		s.rec.start()
	}
	go s.guard.sweep(s.ctx)
	if s.overload != nil {
		go s.overload.measure(s.ctx)
	}
	return s, nil
}

// Start binds every realm's listeners and starts serving.
func (s *SBC) Start() error {
	for _, r := range s.order {
		if err := r.listen(s.cfg.SIP.UDPReadBuffer, s.freeBind); err != nil {
			s.closeRealms()
			return err
		}
	}
	for _, r := range s.order {
		r.serve()
		s.log.Info("realm listening", "realm", r.Name, "listen", r.cfg.Listen, "transports", r.cfg.Transports, "advertise", r.cfg.AdvertiseAddr())
	}
	s.startTrunks()
	return nil
}

// Close ends every call (BYE on both legs, so no phone is left hanging on
// a dead SBC), waits a bounded time for that, and closes the listeners.
//
// With a call store (HA or local persistence) the calls are not ended:
// their records stay for the node that takes over, or for this one when
// it comes back.
func (s *SBC) Close(ctx context.Context) error {
	if s.rec != nil {
		s.standby.Store(true)
		s.rec.close(ctx)
		s.abandonAll("shutdown_kept")
	}
	for _, c := range s.calls.snapshot() {
		s.hangup(c, "shutdown", nil, reasonShutdown)
	}
	s.drainMu.Lock()
	s.draining = true
	s.drainMu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("shutdown: calls still ending: %w", ctx.Err())
	}
	s.stopTrunks(ctx)
	s.cancel()
	s.closeRealms()
	return err
}

func (s *SBC) closeRealms() {
	for _, r := range s.order {
		r.close()
	}
	s.closeHEP()
}

// Metrics exposes the SBC's Prometheus registry and counters.
func (s *SBC) Metrics() *Metrics { return s.metrics }

// ActiveCalls is the number of calls in the table.
func (s *SBC) ActiveCalls() int { return s.calls.count() }

// register binds the realm's sipgo server to the B2BUA's handlers.
func (s *SBC) register(r *Realm) {
	wrap := func(h func(*Realm, *sip.Request, sip.ServerTransaction)) func(*sip.Request, sip.ServerTransaction) {
		h = s.guard.chain(h)
		return func(req *sip.Request, tx sip.ServerTransaction) {
			if s.standby.Load() { // fenced (TCP; UDP stops in readFilter)
				return
			}
			s.metrics.reqIn(r.Name, string(req.Method))
			defer s.handlers.track(req, tx)()
			h(r, req, tx)
		}
	}
	r.srv.OnInvite(wrap(s.onInvite))
	r.srv.OnAck(wrap(s.onAck))
	r.srv.OnBye(wrap(s.onBye))
	r.srv.OnCancel(wrap(s.onStrayCancel))
	r.srv.OnOptions(wrap(s.onOptions))
	for _, m := range []sip.RequestMethod{sip.UPDATE, sip.INFO, sip.MESSAGE, sip.NOTIFY, sip.REFER} {
		r.srv.OnRequest(m, wrap(s.onInDialog))
	}
	r.srv.OnRequest(sip.PRACK, wrap(s.onPrack)) // prack.go
	for _, m := range []sip.RequestMethod{sip.REGISTER, sip.SUBSCRIBE, sip.PUBLISH} {
		r.srv.OnRequest(m, wrap(s.onNotAllowed))
	}
	r.srv.OnNoRoute(wrap(s.onUnknownMethod))
	s.guard.registerHandlers(r, wrap)
}

// reply answers a request locally (not relayed) from the realm's face.
func (s *SBC) reply(r *Realm, req *sip.Request, tx sip.ServerTransaction, status int, reason string, localTag string, extra ...sip.Header) {
	res := buildLocalResponse(r, req, status, reason, localTag)
	for _, h := range extra {
		res.AppendHeader(h)
	}
	s.respond(r, tx, res)
}

// startedCall is the call whose leg A has this Call-ID (the guard's
// admission).
func (s *SBC) startedCall(callID string) (admittedCall, bool) {
	ref, ok := s.calls.lookup(callID)
	if !ok || ref.side != SideA {
		return nil, false
	}
	return ref.call, true
}

func (s *SBC) respond(r *Realm, tx sip.ServerTransaction, res *sip.Response) {
	s.handlers.answered(tx)
	if err := tx.Respond(res); err != nil {
		if !errors.Is(err, sip.ErrTransactionTerminated) {
			r.log.Debug("respond failed", "status", res.StatusCode, "error", err)
		}
		return
	}
	s.metrics.resOut(r.Name, res.StatusCode)
	s.noteFinal(res) // cdr.go
}

// onOptions answers out-of-dialog OPTIONS locally (trunk keepalives) and
// relays in-dialog ones.
func (s *SBC) onOptions(r *Realm, req *sip.Request, tx sip.ServerTransaction) {
	if toTag(req) != "" {
		s.onInDialog(r, req, tx)
		return
	}
	if req.Recipient.Scheme != "sip" && req.Recipient.Scheme != "sips" {
		s.reply(r, req, tx, 416, "Unsupported URI Scheme", newTag())
		return
	}
	if bad := unsupportedRequire(req); bad != "" {
		s.reply(r, req, tx, sip.StatusBadExtension, "Bad Extension", newTag(), sip.NewHeader("Unsupported", bad))
		return
	}
	if maxForwards(req) == 0 {
		// RFC 3261 11.2 would let us answer; a zero here is a probe for
		// loops, and 483 is what a proxy would say.
		s.reply(r, req, tx, sip.StatusTooManyHops, "Too Many Hops", "")
		return
	}
	s.reply(r, req, tx, sip.StatusOK, "OK", newTag(),
		sip.NewHeader("Allow", allowed),
		sip.NewHeader("Accept", "application/sdp"),
		sip.NewHeader("Supported", optionsSupported)) // capabilities.go
}

func (s *SBC) onNotAllowed(r *Realm, req *sip.Request, tx sip.ServerTransaction) {
	if toTag(req) != "" {
		s.reply(r, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "")
		return
	}
	s.reply(r, req, tx, sip.StatusMethodNotAllowed, "Method Not Allowed", newTag(), sip.NewHeader("Allow", allowed))
}

func (s *SBC) onUnknownMethod(r *Realm, req *sip.Request, tx sip.ServerTransaction) {
	s.reply(r, req, tx, sip.StatusNotImplemented, "Not Implemented", newTag(), sip.NewHeader("Allow", allowed))
}

// onStrayCancel sees only CANCELs that matched no INVITE transaction
// (sipgo answers the others itself and signals the INVITE's OnCancel).
func (s *SBC) onStrayCancel(r *Realm, req *sip.Request, tx sip.ServerTransaction) {
	s.reply(r, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "")
}

// onStrayResponse sees responses that matched no client transaction. A
// retransmitted 2xx means the ACK the SBC sent was lost: send it again.
func (s *SBC) onStrayResponse(r *Realm, res *sip.Response) {
	s.metrics.resIn(r.Name, res.StatusCode)
	if s.strayOnLegB(res) { // fork.go, cancel.go
		return
	}
	cseq := res.CSeq()
	if res.IsSuccess() && cseq != nil && cseq.MethodName == sip.INVITE && res.CallID() != nil {
		if ref, ok := s.calls.lookup(res.CallID().Value()); ok {
			c := ref.call
			c.mu.Lock()
			leg := c.leg(ref.side)
			var ack *sip.Request
			if leg != nil && leg.ack != nil && leg.ack.CSeq().SeqNo == cseq.SeqNo {
				ack = leg.ack.Clone()
			}
			c.mu.Unlock()
			if ack != nil {
				s.send(leg.realm, ack)
				return
			}
		}
	}
	s.metrics.DroppedStray.WithLabelValues(r.Name, "response").Inc()
}
