package ha

import "errors"

// Sentinel errors. Callers test with errors.Is; messages wrap them with
// what failed.
var (
	// ErrNotLeader: writes go to the leader only. The caller is standby
	// (or has just lost leadership) and must not serve.
	ErrNotLeader = errors.New("ha: not the leader")
	// ErrClosed: the node was closed.
	ErrClosed = errors.New("ha: node closed")
	// ErrBadRecord: a key or value outside the limits (empty key, key over
	// MaxKeyLen, value over MaxValueLen).
	ErrBadRecord = errors.New("ha: bad record")
	// ErrOutcomeUnknown: leadership was lost while the write was in flight;
	// it may or may not have been committed. The new leader's store is the
	// truth.
	ErrOutcomeUnknown = errors.New("ha: leadership lost, write outcome unknown")
	// ErrCorrupt: a log entry or snapshot that cannot be decoded.
	ErrCorrupt = errors.New("ha: corrupt entry")
)
