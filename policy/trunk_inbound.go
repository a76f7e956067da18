package policy

// InboundTrunk is the trunk of realm whose target source ("ip:port", as
// sipgo's Request.Source gives it) is, the way RouteCall recognises a
// call from a trunk; nil when the call is from no trunk.
func (r *Router) InboundTrunk(realm, source string) *Trunk {
	return r.inboundTrunk(realm, source)
}
