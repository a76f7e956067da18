package policy

import "errors"

// Sentinel errors of the policy pieces.
var (
	// ErrBanListFull is returned when the ban list holds its maximum.
	ErrBanListFull = errors.New("policy: ban list full")
	// ErrBadCredentials is a digest answer that does not verify.
	ErrBadCredentials = errors.New("policy: bad credentials")
	// ErrStaleNonce is a digest answer with a nonce that has expired: the
	// client may retry with the new one (stale=true), no strike.
	ErrStaleNonce = errors.New("policy: stale nonce")
	// ErrNoCredentials is a request without an Authorization header for us.
	ErrNoCredentials = errors.New("policy: no credentials")
)

// ErrLocationsFull is a new binding refused because the store is full.
var ErrLocationsFull = errors.New("policy: location store full")
