// Package ha is EdgeSBC's high availability: a Raft node (hashicorp/raft
// v1.8 with a raft-wal log and stable store and file snapshots) holding a
// replicated store of opaque records, effective-leadership notifications
// with a lease check, and VIP takeover (netlink + gratuitous ARP). It
// knows nothing of calls: sbc/ owns the records' encoding.
//
// Three voters: SBC node A, SBC node B and a witness (sbcd -role witness,
// Config.Witness), so the loss of any one leaves a quorum. The effective
// leader is the active SBC node.
//
// # How an SBC node uses it
//
// Follow(ctx, node, vips, Hooks{Restore, Serve, Stop}) does steps 1 and 2
// below in the right order; hooks are the SBC's part. By hand:
//
//  1. At start, before Open: ReleaseVIPs(vips). A VIP left on the
//     interface by a killed process must not answer ARP beside the new
//     active node.
//  2. Open, then consume Leadership() (one goroutine, the only reader):
//     - true: the local store already holds every committed record (a
//     barrier ran first). Range over it to restore calls and media,
//     then TakeVIPs, then serve SIP on the VIPs.
//     - false: ReleaseVIPs and stop serving at once, before anything
//     else (fencing). The store stays warm: standby keeps applying.
//     Check IsLeader after draining: it is the current truth.
//  3. While active: Put/PutAsync each record after setup and on every
//     change, Delete at the end. PutAsync does not wait for replication
//     (the call path need not); concurrent writes are coalesced into one
//     log entry each (see batch.go). ErrNotLeader means stop serving.
//
// Timing (defaults): heartbeat timeout 200 ms, election timeout 200 ms,
// leader lease 150 ms. A dead leader is replaced in about 0.3 to 0.6 s
// (measured in the multi-process test); a leader cut off from both
// others drops effective leadership after about 150 ms (Raft's
// CheckQuorum), at most 350 ms (the lease check, for a stuck Raft loop),
// and a new leader reports its gain no sooner than 350 ms after it last
// heard from the old one (see leader.go).
package ha
