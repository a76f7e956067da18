// Package cdr writes call detail records: one Record per call attempt,
// answered or not, to a JSON-lines file and, where configured, to
// PostgreSQL, off the call path. It knows nothing of SIP messages or of
// the B2BUA: package sbc fills a Record when a call ends and hands it to
// a Writer, which queues it (never blocking the caller) for each sink.
//
// Durability: a record counts as written once its sink has it durably as
// its fsync policy says (the file synced, the database committed, or the
// spool synced); what is only queued when the process dies is lost, and
// what is counted written is not.
package cdr

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Record is one call attempt. Times are UTC with millisecond precision.
type Record struct {
	// ID is unique per record (the database's key, so a record replayed
	// twice is stored once); the Writer fills it when empty.
	ID string `json:"id"`
	// CallID is the SBC's own call ID, as the admin API shows it.
	CallID string `json:"call_id"`
	// Node is the SBC node that ended the call (HA node name).
	Node string `json:"node,omitempty"`

	Start  time.Time `json:"start"`
	Answer time.Time `json:"answer,omitzero"`
	End    time.Time `json:"end"`
	// DurationMs is the talk time, answer to end (0 when unanswered).
	DurationMs int64 `json:"duration_ms"`

	A Leg  `json:"a"`
	B *Leg `json:"b,omitempty"` // nil when no target was tried

	Caller Number `json:"caller"`
	Callee Number `json:"callee"`

	Route    string `json:"route,omitempty"`
	Trunk    string `json:"trunk,omitempty"`
	RealmIn  string `json:"realm_in"`
	RealmOut string `json:"realm_out,omitempty"`
	// Attempts is how many targets leg B was sent to (failover).
	Attempts int `json:"attempts"`

	// Status is the outcome (the Status* constants); Result the SBC's
	// finer reason (sbc_calls_total's result label); EndedBy who ended it.
	Status  string `json:"status"`
	Result  string `json:"result,omitempty"`
	EndedBy string `json:"ended_by"`
	// SIPCode and SIPReason are the final answer to the caller's INVITE
	// (200 for an answered call); Q850 the cause of a Reason header
	// (RFC 3326) of the BYE that ended the call, or the SBC's own.
	SIPCode   int    `json:"sip_code,omitempty"`
	SIPReason string `json:"sip_reason,omitempty"`
	Q850      int    `json:"q850_cause,omitempty"`

	Media []Stream `json:"media,omitempty"`
}

// Leg is one side of the call as the SBC saw it.
type Leg struct {
	CallID string `json:"call_id"`
	Peer   string `json:"peer,omitempty"`
}

// Number is a party's number as it arrived on leg A and as the SBC sent
// it on leg B (after normalization).
type Number struct {
	Received string `json:"received"`
	Sent     string `json:"sent,omitempty"`
}

// Stream is one media line: its codec, path and per-direction quality.
// SRTP carries suite names only, never keys.
type Stream struct {
	Index int     `json:"index"`
	Codec string  `json:"codec,omitempty"`
	Path  string  `json:"path,omitempty"` // xdp, tc or userspace
	SRTPA string  `json:"srtp_a,omitempty"`
	SRTPB string  `json:"srtp_b,omitempty"`
	MOS   float64 `json:"mos"`
	FromA Dir     `json:"from_a"`
	FromB Dir     `json:"from_b"`
}

// Dir is what the SBC received from one side of a stream.
type Dir struct {
	Packets  uint64  `json:"packets"`
	Lost     int64   `json:"lost"`
	JitterMs float64 `json:"jitter_ms"`
}

// Status values.
const (
	StatusAnswered  = "answered"
	StatusBusy      = "busy"
	StatusNoAnswer  = "no_answer" // rang out or timed out
	StatusCancelled = "cancelled" // the caller gave up
	StatusRejected  = "rejected"  // 4xx/6xx other than busy
	StatusFailed    = "failed"    // 5xx, no route, no target reachable, media refused
)

// EndedBy values.
const (
	EndedByCaller = "caller"
	EndedByCallee = "callee"
	EndedBySBC    = "sbc"
)

// NewID is a random 128-bit record ID in hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// MS is t in UTC, truncated to the millisecond (zero stays zero).
func MS(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Millisecond)
}
