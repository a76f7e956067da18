package sbc

import (
	"github.com/edgesbc/edgesbc/mediarelay"
)

// Side names a call's legs: A is the leg the call arrived on, B the leg the
// SBC placed toward the route target. It is mediarelay's, so the media hook
// and the B2BUA speak of the same sides.
type Side = mediarelay.Side

const (
	SideA = mediarelay.SideA
	SideB = mediarelay.SideB
)

// sideName is mediarelay's one spelling of a side ("a", "b").
var sideName = Side.Name

// MediaHook sees every SDP body that crosses the SBC. mediarelay's Anchor
// implements it to put the SBC's own addresses in the SDP and relay the
// media; an error refuses the offer (503 when out of ports, 400 for an
// unreadable SDP, else 488).
type MediaHook interface {
	// Offer rewrites an offer that arrived on leg from, for the other leg.
	Offer(call mediarelay.CallRef, from Side, sdp []byte) ([]byte, error)
	// Answer rewrites an answer that arrived on leg from, for the other leg.
	Answer(call mediarelay.CallRef, from Side, sdp []byte) ([]byte, error)
	// End releases whatever the call held.
	End(callID string)
}

// mediaTimeouts is implemented by hooks that can tell when a call's media
// went silent.
type mediaTimeouts interface {
	OnTimeout(func(callID string))
}

// mediaRollback is implemented by hooks that can undo an offer: the far
// leg refused it, so the media goes back to what it was before it.
type mediaRollback interface {
	Rollback(callID string)
}

// rollbackOffer undoes call c's offer in progress, where the hook can.
func (s *SBC) rollbackOffer(c *Call) {
	if h, ok := s.media.(mediaRollback); ok {
		h.Rollback(c.ID)
	}
}

// mediaInfo is implemented by hooks that can describe a call's media.
type mediaInfo interface {
	Media(callID string) (mediarelay.CallMedia, bool)
}

// PassThroughMedia leaves SDP untouched: signaling-only operation
// (media.enabled: false).
type PassThroughMedia struct{}

func (PassThroughMedia) Offer(_ mediarelay.CallRef, _ Side, sdp []byte) ([]byte, error) {
	return sdp, nil
}
func (PassThroughMedia) Answer(_ mediarelay.CallRef, _ Side, sdp []byte) ([]byte, error) {
	return sdp, nil
}
func (PassThroughMedia) End(string) {}
