package mediarelay

// The Anchor's view of the kernel offload, for sbcd and the admin API.

// Flows lists every flow of every call with its path and counters.
func (a *Anchor) Flows() []FlowInfo { return a.relay.Flows() }

// Path is the kernel path in use ("xdp", "tc"), or "userspace".
func (a *Anchor) Path() string { return a.relay.Path() }

// OwnedFlows are the kernel flows the anchored calls' streams should have.
func (a *Anchor) OwnedFlows() map[FlowKey]bool { return a.relay.OwnedFlows() }

// ReconcileFlows removes pinned kernel flows no call owns (start-up, after
// the calls were restored).
func (a *Anchor) ReconcileFlows(owned map[FlowKey]bool) (kept, removed int, err error) {
	return a.relay.ReconcileFlows(owned)
}

// Path is the path forwarding the stream now: the kernel's once any of its
// flows is offloaded, else "userspace".
func (s *Stream) Path() string {
	if s.relay.off != nil && s.Offloaded() > 0 {
		return s.relay.off.dp.Path()
	}
	return PathUserSpace
}
