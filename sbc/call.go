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

// Leg is one dialog of a call, seen from the SBC's side of it.
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
}

// Call is one B2BUA call: leg A toward the caller, leg B toward the callee.
// mu guards everything below it; nothing is sent while it is held.
type Call struct {
	ID    string
	Start time.Time
	route string
	media mediarelay.CallRef // the call as the media hook knows it

	mu       sync.Mutex
	state    CallState
	a, b     *Leg
	answered time.Time
	result   string
	// reinvite is set while an INVITE transaction is under way in either
	// direction: a second one gets 491 (glare, RFC 3261 14.2).
	inviteBusy bool
	// ackWait is closed, or fed, when the ACK the SBC waits for arrives on
	// the leg named by ackLeg (initial answer or re-INVITE answer).
	ackWait *ackWaiter
	// ackSeen: the awaited ACK was handed over and inviteBusy is about to
	// clear; a request racing that gap waits instead of getting 491.
	ackSeen bool
	// byeB is set when leg B's BYE overtook its 2xx: the answer is still
	// relayed to A, then A is sent BYE at once.
	byeB bool
	// cancelSetup stops leg B's setup (CANCEL) when the call ends early.
	cancelSetup func()
	done        chan struct{} // closed when the call ends
	// recorded: the call has a record in the HA store (replicate.go);
	// abandoned: another node owns it now, so ending it here sends
	// nothing and leaves the record alone.
	recorded, abandoned bool
}

type ackWaiter struct {
	leg  Side
	cseq uint32
	ch   chan *sip.Request
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
// the SBC's own, so finding one among incoming INVITEs means a loop.
type callTable struct {
	mu    sync.RWMutex
	calls map[string]*Call
	byCID map[string]legRef
}

type legRef struct {
	call *Call
	side Side
}

func newCallTable() *callTable {
	return &callTable{calls: map[string]*Call{}, byCID: map[string]legRef{}}
}

func (t *callTable) add(c *Call) {
	t.mu.Lock()
	t.calls[c.ID] = c
	t.byCID[c.a.d.CallID] = legRef{c, SideA}
	t.mu.Unlock()
}

// addLeg indexes a leg B Call-ID (one per target tried).
func (t *callTable) addLeg(c *Call, s Side, callID string) {
	t.mu.Lock()
	t.byCID[callID] = legRef{c, s}
	t.mu.Unlock()
}

func (t *callTable) dropLeg(callID string) {
	t.mu.Lock()
	delete(t.byCID, callID)
	t.mu.Unlock()
}

func (t *callTable) lookup(callID string) (legRef, bool) {
	t.mu.RLock()
	r, ok := t.byCID[callID]
	t.mu.RUnlock()
	return r, ok
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
		if r, ok := t.byCID[id]; ok && r.call == c {
			delete(t.byCID, id)
		}
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
