package sbc

// Side names a call's legs: A is the leg the call arrived on, B the leg the
// SBC placed toward the route target.
type Side int

const (
	SideA Side = iota
	SideB
)

func (s Side) String() string {
	if s == SideA {
		return "a"
	}
	return "b"
}

// MediaHook sees every SDP body that crosses the SBC. The media anchoring
// work (mediarelay) implements it to put the SBC's own addresses in the SDP;
// an error rejects the offer (488) and is counted.
type MediaHook interface {
	// Offer rewrites an offer that arrived on leg from, for the other leg.
	Offer(callID string, from Side, sdp []byte) ([]byte, error)
	// Answer rewrites an answer that arrived on leg from, for the other leg.
	Answer(callID string, from Side, sdp []byte) ([]byte, error)
	// End releases whatever the call held.
	End(callID string)
}

// PassThroughMedia leaves SDP untouched: signaling-only operation, until
// media anchoring is configured.
type PassThroughMedia struct{}

func (PassThroughMedia) Offer(_ string, _ Side, sdp []byte) ([]byte, error)  { return sdp, nil }
func (PassThroughMedia) Answer(_ string, _ Side, sdp []byte) ([]byte, error) { return sdp, nil }
func (PassThroughMedia) End(string)                                          {}
