package sbc

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/topology"
)

// CallState is where a call is in its life.
type CallState int

const (
	StateTrying    CallState = iota // INVITE relayed, no answer yet
	StateEarly                      // a provisional with a tag came back
	StateAnswered                   // 2xx sent on leg A, its ACK not yet seen
	StateConfirmed                  // both legs established
	StateEnded
)

func (s CallState) String() string {
	return [...]string{"trying", "early", "answered", "confirmed", "ended"}[s]
}

// Leg is one dialog of a call, seen from the SBC's side of it. side,
// realm and local are set when the leg is made; the rest is guarded by
// its call's mu.
type Leg struct {
	side  Side
	realm *Realm
	d     topology.Dialog
	local topology.Local
	// cseq is the last CSeq the SBC used on this leg; remoteCSeq the last
	// one the peer used (RFC 3261 12.2.2: lower ones get 500).
	cseq       uint32
	remoteCSeq uint32
	peer       string // where the peer's packets come from or go to
	// invite is the INVITE that opened this leg: received (A) or sent (B).
	invite *sip.Request
	// ack is the last 2xx ACK the SBC sent on this leg, re-sent when the
	// peer retransmits its 2xx (our ACK was lost).
	ack *sip.Request
	// rel is the leg's 100rel and early offer/answer state (prack.go).
	rel relState
	// forks is leg B's early dialogs and losing 2xx (fork.go).
	forks forkState
	// filter is the leg's realm's header policy in the snapshot its call
	// started under: a reload changes new calls only (reload.go). Nil (a
	// restored leg): the current snapshot's.
	filter *topology.HeaderFilter
}

// Call is one B2BUA call: leg A toward the caller, leg B toward the callee.
// It owns its state and its transitions (the methods in this file); the
// SBC drives it from the SIP handlers and does the sending.
//
// Lock rules: the fields above mu are set when the call is made and never
// change, and are read without it. mu guards everything below it, the
// legs' fields included. Nothing is sent, no hook runs, and neither the
// media hook nor the call table is called while mu is held.
type Call struct {
	ID    string
	Start time.Time
	route string
	// pol is the routing and header policy the call started under
	// (reload.go); nil for a call restored from its record.
	pol   *policySnap
	media mediarelay.CallRef // the call as the media hook knows it
	done  chan struct{}      // closed by end, exactly once
	// redirect is the 3xx Contact leg B is being sent to (redirect.go);
	// only the setup goroutine touches it, so it needs no lock.
	redirect *redirectHop

	// offerType is the Content-Type of the INVITE's body as leg B gets it
	// (bodies.go); set before the first leg B is tried.
	offerType string

	mu       sync.Mutex
	state    CallState
	a, b     *Leg
	answered time.Time
	// result is why the call ended (a metric label); reason the Reason
	// header (RFC 3326) its BYEs carry, if any.
	result, reason string
	// inviteBusy is set while an offer (INVITE, or UPDATE with SDP) is
	// under way in either direction: a second one gets 491 (glare, RFC
	// 3261 14.2). offerIdle is closed when it clears (beginOffer,
	// finishOffer); it is nil while no offer is under way.
	inviteBusy bool
	offerIdle  chan struct{}
	// ackWait is closed, or fed, when the ACK the SBC waits for arrives on
	// the leg named by ackLeg (initial answer or re-INVITE answer).
	ackWait *ackWaiter
	// ackSeen: the awaited ACK was handed over and inviteBusy is about to
	// clear; a request racing that gap waits instead of getting 491.
	ackSeen bool
	// byeB is set when leg B's BYE overtook its 2xx: the answer is still
	// relayed to A, then A is sent BYE at once.
	byeB bool
	// byeBReason is that BYE's Reason, relayed on A's; cancelReason the
	// Reason leg B's CANCEL carries (the caller's CANCEL's or BYE's, or
	// the SBC's own).
	byeBReason, cancelReason string
	// cancelSetup stops leg B's setup (CANCEL) when the call ends early;
	// setupDone is closed when it does.
	cancelSetup func()
	setupDone   <-chan struct{}
	// callerCancelled: leg A's INVITE got the caller's CANCEL, and so its
	// 487, before any final answer (cancel.go).
	callerCancelled bool
	// givenUp are the legs B the call gave up on (cancel.go), still
	// listened to and indexed by Call-ID until the call's linger ends.
	givenUp []*Leg
	// recorded: the call has a record in the HA store (replicate.go);
	// abandoned: another node owns it now, so ending it here sends
	// nothing and leaves the record alone.
	recorded, abandoned bool
	// onEnd runs once, in order, when the call ends (OnEnd); leave runs
	// after all of them (track: the call leaves the table last, so a call
	// no longer listed has released every hold it had).
	onEnd []func()
	leave func()
	// notes gather what the call's record needs (cdr.go).
	notes callNotes

	// st is the call's session timers (sessiontimer.go), under its own lock.
	st sessionTimers
}

type ackWaiter struct {
	leg  Side
	cseq uint32
	ch   chan *sip.Request
}

// OnEnd registers f to run once when the call ends, after the hooks
// registered before it, on the goroutine that ends the call; at once when
// the call has ended already. f must not block.
func (c *Call) OnEnd(f func()) {
	c.mu.Lock()
	if c.state != StateEnded {
		c.onEnd = append(c.onEnd, f)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	f()
}

// end marks the call over with a result (and the Reason its BYEs carry),
// exactly once: it says whether this call of it did, and then runs the
// OnEnd hooks.
func (c *Call) end(result, reason string) bool {
	c.mu.Lock()
	if c.state == StateEnded {
		c.mu.Unlock()
		return false
	}
	c.state = StateEnded
	c.result, c.reason = result, reason
	close(c.done)
	hooks, leave := c.onEnd, c.leave
	c.onEnd, c.leave = nil, nil
	c.mu.Unlock()
	for _, f := range hooks {
		f()
	}
	if leave != nil {
		leave()
	}
	return true
}

// Result is why the call ended ("" while it has not).
func (c *Call) Result() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.result
}

// Answered says whether the call got its 2xx.
func (c *Call) Answered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.answered.IsZero()
}

// beginOfferLocked claims the call's one offer in progress. c.mu held.
func (c *Call) beginOfferLocked() {
	if !c.inviteBusy {
		c.inviteBusy = true
		c.offerIdle = make(chan struct{})
	}
	c.ackSeen = false
}

// finishOfferLocked releases it, waking whoever waits in
// waitOfferLocked. c.mu held.
func (c *Call) finishOfferLocked() {
	if c.inviteBusy {
		c.inviteBusy = false
		close(c.offerIdle)
		c.offerIdle = nil
	}
}

// finishOffer is finishOfferLocked for a caller not holding c.mu.
func (c *Call) finishOffer() {
	c.mu.Lock()
	c.finishOfferLocked()
	c.mu.Unlock()
}

// waitOfferLocked waits up to d for the offer in progress to finish or
// the call to end. c.mu is held on entry and on return, and released
// while waiting.
func (c *Call) waitOfferLocked(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for c.inviteBusy && c.state != StateEnded {
		idle := c.offerIdle
		c.mu.Unlock()
		select {
		case <-idle:
		case <-c.done:
		case <-t.C:
			c.mu.Lock()
			return
		}
		c.mu.Lock()
	}
}

// nextCSeq takes the next CSeq for a request the SBC sends on leg l, and
// the leg's dialog as of now to build it from.
func (c *Call) nextCSeq(l *Leg) (uint32, topology.Dialog) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return l.nextCSeqLocked(), l.d
}

// nextCSeqLocked is nextCSeq with its call's mu held.
func (l *Leg) nextCSeqLocked() uint32 {
	l.cseq++
	return l.cseq
}

// legByTags is the call's leg on side s when a request with that Call-ID,
// To tag (ours) and From tag (the peer's) arrived in realm r belongs to
// its dialog (RFC 3261 12.2.2). The peer's tag is checked once known: a
// callee's BYE may overtake the 2xx that would have told it.
func (c *Call) legByTags(s Side, r *Realm, callID, localTag, remoteTag string) (*Leg, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.leg(s)
	if l == nil || l.realm != r || l.d.CallID != callID || l.d.LocalTag != localTag {
		return nil, false
	}
	if l.d.RemoteTag != "" && l.d.RemoteTag != remoteTag {
		return nil, false
	}
	return l, true
}

// openedBy says whether leg A's INVITE had that From tag and CSeq number.
func (c *Call) openedBy(fromTag string, cseq uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	inv := c.a.invite
	return inv != nil && c.a.d.RemoteTag == fromTag && inv.CSeq().SeqNo == cseq
}

// learnDialog takes leg B's dialog state from a response that creates it:
// the callee's tag, Contact and route set (RFC 3261 12.1.2).
func (c *Call) learnDialog(b *Leg, res *sip.Response) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tag := toTag(res); tag != "" {
		b.d.RemoteTag = tag
	}
	if u, ok := contactURI(res); ok {
		b.d.Target = u
	}
	if rr := recordRoute(res, true); len(rr) > 0 || res.IsSuccess() {
		b.d.RouteSet = rr
	}
}

// awaitAckLocked registers the wait for the ACK to a 2xx sent on side s
// for the INVITE of CSeq cseq. c.mu held.
func (c *Call) awaitAckLocked(s Side, cseq uint32) *ackWaiter {
	w := &ackWaiter{leg: s, cseq: cseq, ch: make(chan *sip.Request, 1)}
	c.ackWait = w
	return w
}

// takeAckWaiter drops w if it is still the call's wait (the ACK came
// another way, or never).
func (c *Call) takeAckWaiter(w *ackWaiter) {
	c.mu.Lock()
	if c.ackWait == w {
		c.ackWait = nil
	}
	c.mu.Unlock()
}

// ackArrived hands an ACK that arrived on side s to whoever waits for it,
// and says whether anyone did.
func (c *Call) ackArrived(s Side, ack *sip.Request) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.ackWait
	if w == nil || w.leg != s || ack.CSeq().SeqNo != w.cseq {
		return false
	}
	c.ackWait = nil
	c.ackSeen = true
	w.ch <- ack
	return true
}

func randUint16() uint16 {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return uint16(b[0])<<8 | uint16(b[1])
}

func newCallID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *Call) leg(s Side) *Leg {
	if s == SideA {
		return c.a
	}
	return c.b
}

func (c *Call) other(s Side) *Leg {
	if s == SideA {
		return c.b
	}
	return c.a
}

// State returns the call's state.
func (c *Call) State() CallState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// callTable indexes calls by the Call-ID of each leg. Leg B's Call-IDs are
// the SBC's own, so finding one among incoming INVITEs means a loop. A
// caller's Call-ID may belong to several calls: one that ended (lingering)
// and the retry that reuses it (RFC 3261 8.1.3.5: after a 401/407, 420,
// 422, 491 or 3xx the UAC sends the same Call-ID with CSeq + 1). Their
// local tags, ours and unique, tell them apart (Call.legByTags).
type callTable struct {
	mu    sync.RWMutex
	calls map[string]*Call
	byCID map[string][]legRef // newest last; at most maxCallsPerCallID
}

type legRef struct {
	call *Call
	side Side
}

// maxCallsPerCallID bounds the calls, lingering ones included, that may
// share one Call-ID: a peer reusing a Call-ID without end gets 482 past it.
const maxCallsPerCallID = 8

func newCallTable() *callTable {
	return &callTable{calls: map[string]*Call{}, byCID: map[string][]legRef{}}
}

// add puts a call and its leg A Call-ID in the table; false (and nothing
// added) when that Call-ID is already shared by maxCallsPerCallID calls.
func (t *callTable) add(c *Call) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	cid := c.a.d.CallID
	if len(t.byCID[cid]) >= maxCallsPerCallID {
		return false
	}
	t.calls[c.ID] = c
	t.byCID[cid] = append(t.byCID[cid], legRef{c, SideA})
	return true
}

// addLeg indexes a leg B Call-ID (one per target tried).
func (t *callTable) addLeg(c *Call, s Side, callID string) {
	t.mu.Lock()
	t.byCID[callID] = append(t.byCID[callID], legRef{c, s})
	t.mu.Unlock()
}

// dropLeg forgets call c's leg with that Call-ID.
func (t *callTable) dropLeg(c *Call, callID string) {
	t.mu.Lock()
	t.dropLocked(c, callID)
	t.mu.Unlock()
}

func (t *callTable) dropLocked(c *Call, callID string) {
	refs := t.byCID[callID]
	kept := refs[:0]
	for _, r := range refs {
		if r.call != c {
			kept = append(kept, r)
		}
	}
	clear(refs[len(kept):])
	if len(kept) == 0 {
		delete(t.byCID, callID)
		return
	}
	t.byCID[callID] = kept
}

// lookup is the newest leg with that Call-ID.
func (t *callTable) lookup(callID string) (legRef, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	refs := t.byCID[callID]
	if len(refs) == 0 {
		return legRef{}, false
	}
	return refs[len(refs)-1], true
}

// lookupAll is every leg with that Call-ID, oldest first (a copy).
func (t *callTable) lookupAll(callID string) []legRef {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return append([]legRef(nil), t.byCID[callID]...)
}

// removeActive takes an ended call out of the active set; its Call-IDs
// stay findable until remove.
func (t *callTable) removeActive(c *Call) {
	t.mu.Lock()
	delete(t.calls, c.ID)
	t.mu.Unlock()
}

func (t *callTable) remove(c *Call, callIDs ...string) {
	t.mu.Lock()
	delete(t.calls, c.ID)
	for _, id := range callIDs {
		t.dropLocked(c, id)
	}
	t.mu.Unlock()
}

func (t *callTable) snapshot() []*Call {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*Call, 0, len(t.calls))
	for _, c := range t.calls {
		out = append(out, c)
	}
	return out
}

func (t *callTable) byID(id string) *Call {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.calls[id]
}

func (t *callTable) count() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.calls)
}

// headerFilter is the header policy of the leg's messages: the one of
// the snapshot its call started under; the current one for a leg
// restored from a record.
func (l *Leg) headerFilter() *topology.HeaderFilter {
	if l.filter != nil {
		return l.filter
	}
	return l.realm.sbcPolicy().filter(l.realm)
}

// policy is the snapshot the call started under, or the current one.
func (c *Call) policy(s *SBC) *policySnap {
	if c.pol != nil {
		return c.pol
	}
	return s.policy()
}
