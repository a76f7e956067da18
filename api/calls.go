package api

import "time"

// Call is one active call: GET /api/v1/calls lists them oldest first,
// GET /api/v1/calls/{id} shows one with its media.
type Call struct {
	ID    string    `json:"id"`
	State string    `json:"state"`
	Route string    `json:"route"`
	Start time.Time `json:"start"`
	A     Leg       `json:"a"`
	B     *Leg      `json:"b,omitempty"`
	// MOS is the media quality estimate so far (0: no media seen).
	MOS float64 `json:"mos"`
	// Path is how the call's media is forwarded: a stream's Path, the
	// paths joined with "+" when its streams differ, "" without media.
	Path string `json:"path,omitempty"`
	// Media is each stream's addresses, latched peers, packets and
	// quality; only in /api/v1/calls/{id}.
	Media *CallMedia `json:"media,omitempty"`
}

// Leg is one leg of a call.
type Leg struct {
	Realm  string `json:"realm"`
	CallID string `json:"call_id"`
	Peer   string `json:"peer"`
}

// CallMedia is a call's media: each stream, and a MOS estimate from the
// worst direction.
type CallMedia struct {
	MOS     float64  `json:"mos"`
	Streams []Stream `json:"streams"`
}

// Stream is one media line of a call.
type Stream struct {
	Index  int       `json:"index"`
	LocalA string    `json:"local_a"`
	LocalB string    `json:"local_b"`
	FromA  StreamDir `json:"from_a"`
	FromB  StreamDir `json:"from_b"`
	OnHold bool      `json:"on_hold"`
	// Path forwards the stream: "xdp" or "tc" once offloaded to the
	// kernel, else "userspace".
	Path string `json:"path"`
	// Codec is the stream's codec (lower-case encoding name).
	Codec string `json:"codec,omitempty"`
	// SRTP suite on each leg ("" = plain RTP); never a key.
	SRTPA string `json:"srtp_a,omitempty"`
	SRTPB string `json:"srtp_b,omitempty"`
}

// StreamDir is what the SBC received from one side of a stream.
type StreamDir struct {
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
	LastSeen           string  `json:"last_seen,omitempty"` // RFC 3339, UTC
}
