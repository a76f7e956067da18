package sbc

import (
	"fmt"
	"net/netip"
	"reflect"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/policy"
	"github.com/edgesbc/edgesbc/topology"
)

// policySnap is what the B2BUA decides a new call by: the routes and the
// dial plan, each route's options, each realm's header policy. It never
// changes once built; a reload builds a new one and swaps the pointer. A
// call reads it once, at its INVITE, and keeps it (Call.pol): its legs'
// headers follow that snapshot's filters for the call's whole life, and
// an established call is untouched by any later reload.
type policySnap struct {
	cfg     *config.Config
	router  *policy.Router
	routes  map[string]routeOpts              // routeopts.go
	filters map[string]*topology.HeaderFilter // by realm name
	peers   map[string][]netip.Prefix         // configured peers by realm (guard_classify.go)
}

// policy is the snapshot new calls use now.
func (s *SBC) policy() *policySnap { return s.pol.Load() }

// filter is realm r's header policy in this snapshot.
func (p *policySnap) filter(r *Realm) *topology.HeaderFilter { return p.filters[r.Name] }

// newPolicy compiles the routes, the dial plan over trunks (the running
// trunks' policy values: their health is the trunk's, not the
// snapshot's) and the realms' header policies of cfg.
func newPolicy(cfg *config.Config, trunks []*policy.Trunk) (*policySnap, error) {
	router, err := policy.NewRouter(cfg.Routes)
	if err != nil {
		return nil, err
	}
	if err := router.SetDialplan(trunks, cfg.Routing.Rules); err != nil {
		return nil, err
	}
	p := &policySnap{cfg: cfg, router: router, routes: newRouteOpts(cfg.Routes), filters: map[string]*topology.HeaderFilter{}, peers: map[string][]netip.Prefix{}}
	for _, rc := range cfg.Realms {
		p.peers[rc.Name] = cfg.StaticPeers(rc.Name)
		f := topology.NewHeaderFilter(rc.Headers.Mode, rc.Headers.AllowedHeaders())
		f.SetTrusted(cfg.Trusted(rc.Name))                   // identity.go
		if err := f.SetRules(rc.Headers.Rules); err != nil { // topology/rules.go
			return nil, fmt.Errorf("realm %s: %w", rc.Name, err)
		}
		p.filters[rc.Name] = f
	}
	return p, nil
}

// Reload puts cfg's live keys (config.Diff) in service for new calls:
// routes, dial plan, each realm's header policy, in one atomic swap; and
// a changed hep section for every message from then on.
// Calls already set up keep the snapshot they started with. A cfg that
// changes a restart-only key is refused naming it (sbcd checks the same
// before; the check is here too so that no caller can skip it), and on
// any error nothing changes.
func (s *SBC) Reload(cfg *config.Config) error {
	if err := config.RestartNeeded(config.Diff(s.policy().cfg, cfg)); err != nil {
		return err
	}
	for name, r := range s.realms {
		// Trust follows from the routes and trunks (config.Trusted); the
		// realm's identity handling took it at start.
		if cfg.Trusted(name) != r.trusted {
			return fmt.Errorf("%w: realms[%s].trust: the realm's trust would change (its routes or trunks did), and that needs a restart of sbcd", config.ErrInvalid, name)
		}
	}
	pol, err := newPolicy(cfg, s.trunkPolicies())
	if err != nil {
		return err
	}
	hepApply := func() {}
	if old := s.policy().cfg.HEP; !reflect.DeepEqual(old, cfg.HEP) {
		if hepApply, err = s.reloadHEP(cfg.HEP); err != nil { // hep_reload.go
			return err
		}
	}
	s.pol.Store(pol)
	hepApply()
	return nil
}

// trunkPolicies are the running trunks' routing values.
func (s *SBC) trunkPolicies() []*policy.Trunk {
	if s.trunks == nil {
		return nil
	}
	out := make([]*policy.Trunk, 0, len(s.trunks.runs))
	for _, run := range s.trunks.runs {
		out = append(out, run.t)
	}
	return out
}
