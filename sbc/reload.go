package sbc

import (
	"fmt"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/policy"
	"github.com/edgesbc/edgesbc/topology"
)

// policySnap is what the B2BUA decides a new call by: the routes and the
// dial plan. It never changes once built; a reload builds a new one and
// swaps the pointer, so a call in setup routes by one snapshot and an
// established call is untouched.
type policySnap struct {
	cfg    *config.Config
	router *policy.Router
	routes map[string]routeOpts // routeopts.go
}

// policy is the snapshot new calls use now.
func (s *SBC) policy() *policySnap { return s.pol.Load() }

// newPolicy compiles the routes and the dial plan of cfg over trunks (the
// running trunks' policy values: their health is the trunk's, not the
// snapshot's).
func newPolicy(cfg *config.Config, trunks []*policy.Trunk) (*policySnap, error) {
	router, err := policy.NewRouter(cfg.Routes)
	if err != nil {
		return nil, err
	}
	if err := router.SetDialplan(trunks, cfg.Routing.Rules); err != nil {
		return nil, err
	}
	return &policySnap{cfg: cfg, router: router, routes: newRouteOpts(cfg.Routes)}, nil
}

// newHeaderFilter is a realm's header policy: the allow or deny list and
// the header rules (topology/rules.go).
func newHeaderFilter(rc config.Realm) (*topology.HeaderFilter, error) {
	f := topology.NewHeaderFilter(rc.Headers.Mode, rc.Headers.List)
	if err := f.SetRules(rc.Headers.Rules); err != nil {
		return nil, fmt.Errorf("realm %s: %w", rc.Name, err)
	}
	return f, nil
}

// Reload puts cfg's live keys (config.Diff) in service for new calls:
// routes, dial plan, each realm's header policy. Calls already set up
// keep the header policy their legs started with. The caller has checked
// config.RestartNeeded; a cfg whose realms or trunks differ from the
// running ones is refused here too, and on any error nothing changes.
func (s *SBC) Reload(cfg *config.Config) error {
	if err := config.RestartNeeded(config.Diff(s.policy().cfg, cfg)); err != nil {
		return err
	}
	pol, err := newPolicy(cfg, s.trunkPolicies())
	if err != nil {
		return err
	}
	filters := make([]*topology.HeaderFilter, len(s.order))
	for i, r := range s.order {
		rc := cfg.Realm(r.Name)
		if rc == nil { // RestartNeeded saw the realms unchanged
			return fmt.Errorf("%w: realms: %s missing", config.ErrInvalid, r.Name)
		}
		if filters[i], err = newHeaderFilter(*rc); err != nil {
			return err
		}
	}
	// Everything is built: swap. A call that reads the realm's filter
	// between these stores and the policy's sees one old and one new
	// piece, each whole, which is as if it arrived a moment earlier.
	for i, r := range s.order {
		r.filter.Store(filters[i])
	}
	s.pol.Store(pol)
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
