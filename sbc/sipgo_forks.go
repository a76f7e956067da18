package sbc

import (
	"github.com/emiago/sipgo/sip"
)

// What sipgo (v1.7.2) does with the answers that forking and CANCEL races
// produce, checked in its transaction code, and what the SBC does about it.
//
// Later 2xx to one INVITE (another fork's, or a retransmission): the
// client transaction passes only the first 2xx up on Responses() and then
// sits in Accepted (RFC 6026) until Timer M; every later 2xx goes to the
// transaction's OnRetransmission hook, whatever its To tag. Once the
// transaction is gone (Terminate, Timer M), they reach the transaction
// layer's unhandled-response handler. Nothing is dropped, so no adapter is
// needed there: tryTarget hooks OnRetransmission and the realm's UA sets
// the unhandled handler, and both lead to afterWin (fork.go).
//
// A Respond after the caller's CANCEL: sipgo's server transaction answers
// the CANCEL, runs OnCancel, sends 487 and moves to Completed. A later
// Respond on it sends nothing, but it does replace the response the
// transaction keeps, and Timer G then retransmits that one (our 2xx)
// instead of the 487 until the caller's ACK. restore487 puts the 487 back.

// restore487 makes the 487 that sipgo sent on a cancelled INVITE server
// transaction the one it retransmits again, after a Respond of ours
// replaced it (see above). sipgo built it with NewResponseFromRequest, so
// the same call gives the same bytes.
func (s *SBC) restore487(tx sip.ServerTransaction, req *sip.Request) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusRequestTerminated, "Request Terminated", nil))
}
