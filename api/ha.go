package api

import "time"

// HA is GET /api/v1/ha: a node's view of its cluster.
type HA struct {
	NodeID string `json:"node_id"`
	// Role: "leader" (effective leader: active), "follower" (standby),
	// "candidate", "witness", or "shutdown". A Raft leader whose lease
	// check fails shows "follower" with RaftState "Leader".
	Role       string   `json:"role"`
	RaftState  string   `json:"raft_state"`
	Witness    bool     `json:"witness"`
	Leader     string   `json:"leader"` // leader's node ID ("" when none known)
	LeaderAddr string   `json:"leader_addr"`
	Term       uint64   `json:"term"`
	Peers      []HAPeer `json:"peers"`
	// AppliedIndex is the last entry applied to the local store,
	// CommitIndex the last known committed, LastIndex the last in the log.
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	LastIndex    uint64 `json:"last_index"`
	// SnapshotIndex is the index of the latest snapshot (taken here or
	// installed from the leader).
	SnapshotIndex uint64 `json:"snapshot_index"`
	// LagEntries is the replication lag in entries: on a follower the
	// committed entries it has not applied yet; on the leader the entries
	// appended but not yet applied.
	LagEntries uint64 `json:"lag_entries"`
	// LastContactMS is how long ago a follower last heard from the leader
	// (0 on the leader): how stale a standby may be.
	LastContactMS float64 `json:"last_contact_ms"`
	Records       int     `json:"records"`
	// RoleChanges counts changes of effective leadership since start;
	// Since is when the last one happened.
	RoleChanges uint64    `json:"role_changes"`
	Since       time.Time `json:"since"`
}

// HAPeer is one voter.
type HAPeer struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	Suffrage string `json:"suffrage"`
	Self     bool   `json:"self,omitempty"`
	Leader   bool   `json:"leader,omitempty"`
	// Unreachable (leader's view only): heartbeats to it are failing
	// since UnreachableSince.
	Unreachable      bool       `json:"unreachable,omitempty"`
	UnreachableSince *time.Time `json:"unreachable_since,omitempty"`
}
