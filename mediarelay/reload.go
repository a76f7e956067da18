package mediarelay

import "fmt"

// facePolicy is the part of a realm's media face a config reload may
// change: the codecs offered into the realm and its SRTP policy. A call
// keeps the one its legs started with; new calls take the face's current.
type facePolicy struct {
	codecs []string
	srtp   SRTPPolicy
}

// SetRealmPolicy puts a realm's codec list and SRTP policy in service for
// calls that start from now on; the calls up keep theirs, re-INVITEs
// included. The address, ports and NAT latching cannot change here.
func (a *Anchor) SetRealmPolicy(realm string, codecs []string, srtp SRTPPolicy) error {
	f, ok := a.realms[realm]
	if !ok {
		return fmt.Errorf("media: no media config for realm %q", realm)
	}
	f.pol.Store(&facePolicy{codecs: append([]string(nil), codecs...), srtp: srtp})
	return nil
}

// KeepKernelFlows makes every stream closed from now on (the calls a
// shutdown lets go of, and Close) leave its kernel flows installed: the
// pinned program forwards the calls' media while sbcd is down, and the
// next run, restoring the calls from state_dir, takes the flows over
// (ReconcileFlows keeps what a restored stream owns). For a stop that
// keeps its calls; the sockets and ports are released as usual.
func (a *Anchor) KeepKernelFlows() { a.relay.keepFlows.Store(true) }
