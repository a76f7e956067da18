package ha

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// Status is a node's view of the cluster, as /api/v1/ha shows it.
type Status struct {
	NodeID string `json:"node_id"`
	// Role: "leader" (effective leader: active), "follower" (standby),
	// "candidate", "witness", or "shutdown". A Raft leader whose lease
	// check fails shows "follower" with RaftState "Leader".
	Role       string       `json:"role"`
	RaftState  string       `json:"raft_state"`
	Witness    bool         `json:"witness"`
	Leader     string       `json:"leader"` // leader's node ID ("" when none known)
	LeaderAddr string       `json:"leader_addr"`
	Term       uint64       `json:"term"`
	Peers      []PeerStatus `json:"peers"`
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

// PeerStatus is one voter.
type PeerStatus struct {
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

func (n *Node) lag() uint64 {
	a := n.raft.AppliedIndex()
	ref := n.raft.CommitIndex()
	if n.raft.State() == raft.Leader {
		ref = n.raft.LastIndex()
	}
	if ref > a {
		return ref - a
	}
	return 0
}

func (n *Node) lastContact() time.Duration {
	if n.raft.State() == raft.Leader {
		return 0
	}
	lc := n.raft.LastContact()
	if lc.IsZero() {
		return 0
	}
	return time.Since(lc)
}

// Status reports role, leader, peers, indexes and lag.
func (n *Node) Status() Status {
	st := n.raft.State()
	s := Status{
		NodeID:        n.cfg.NodeID,
		RaftState:     st.String(),
		Witness:       n.cfg.Witness,
		AppliedIndex:  n.raft.AppliedIndex(),
		CommitIndex:   n.raft.CommitIndex(),
		LastIndex:     n.raft.LastIndex(),
		LagEntries:    n.lag(),
		LastContactMS: float64(n.lastContact().Microseconds()) / 1000,
		Records:       n.Len(),
		RoleChanges:   n.lead.changes.Load(),
		Since:         time.Unix(0, n.lead.since.Load()).UTC(),
	}
	stats := n.raft.Stats()
	s.Term, _ = strconv.ParseUint(stats["term"], 10, 64)
	s.SnapshotIndex, _ = strconv.ParseUint(stats["last_snapshot_index"], 10, 64)
	switch {
	case n.IsLeader():
		s.Role = "leader"
	case n.cfg.Witness && st != raft.Shutdown:
		s.Role = "witness"
	case st == raft.Candidate:
		s.Role = "candidate"
	case st == raft.Shutdown:
		s.Role = "shutdown"
	default:
		s.Role = "follower"
	}
	la, lid := n.raft.LeaderWithID()
	s.Leader, s.LeaderAddr = string(lid), string(la)
	var servers []raft.Server
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		servers = f.Configuration().Servers
	}
	n.peerMu.Lock()
	for _, sv := range servers {
		p := PeerStatus{ID: string(sv.ID), Addr: string(sv.Address), Suffrage: sv.Suffrage.String(),
			Self: string(sv.ID) == n.cfg.NodeID, Leader: sv.ID == lid}
		if t, down := n.peerDown[sv.ID]; down && st == raft.Leader {
			t := t.UTC()
			p.Unreachable, p.UnreachableSince = true, &t
		}
		s.Peers = append(s.Peers, p)
	}
	n.peerMu.Unlock()
	sort.Slice(s.Peers, func(i, j int) bool { return s.Peers[i].ID < s.Peers[j].ID })
	return s
}

// ServeHTTP serves the node's Status as JSON (GET /api/v1/ha).
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(n.Status())
}
