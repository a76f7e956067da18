// Package policy decides where a call goes and whether it may: routing by
// source realm and dialled user, and (with the trunk work) ACLs, admission
// and rate limits. It never sends packets.
package policy

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/edgesbc/edgesbc/config"
)

// Decision is where a call goes: the realm it leaves through and the
// targets to try in order (the next on 408, 5xx or silence).
type Decision struct {
	Route         string
	ToRealm       string
	Targets       []config.Target
	TargetTimeout time.Duration

	// Trunks is the trunk of each target (nil entries for plain route
	// targets); InTrunk the trunk the call came in on; Called the called
	// number after InTrunk's inbound normalization (route_dialplan.go).
	Trunks  []*Trunk
	InTrunk *Trunk
	Called  string
}

type route struct {
	d      Decision
	from   string
	prefix string
	re     *regexp.Regexp
}

// Router matches calls against the configured routes, first match wins.
type Router struct {
	routes []route

	// The dial plan over trunks (route_dialplan.go); now and intn are
	// replaced by tests.
	rules     []*dialRule
	trunks    map[string]*Trunk
	trunkList []*Trunk
	now       func() time.Time
	intn      func(int) int
}

// NewRouter compiles the routes of a validated config.
func NewRouter(routes []config.Route) (*Router, error) {
	r := &Router{}
	for i, c := range routes {
		rt := route{from: c.FromRealm, prefix: c.UserPrefix, d: Decision{
			Route: c.Name, ToRealm: c.ToRealm, TargetTimeout: c.TargetTimeout.Std(),
		}}
		if c.UserRegex != "" {
			re, err := regexp.Compile(c.UserRegex)
			if err != nil {
				return nil, fmt.Errorf("routes[%d].user_regex: %w", i, err)
			}
			rt.re = re
		}
		for j, t := range c.Targets {
			tg, err := config.ParseTarget(t)
			if err != nil {
				return nil, fmt.Errorf("routes[%d].targets[%d]: %w", i, j, err)
			}
			rt.d.Targets = append(rt.d.Targets, tg)
		}
		r.routes = append(r.routes, rt)
	}
	return r, nil
}

// Route returns the first route that matches a call arriving in fromRealm
// for the request-URI user, or false when none does (the caller answers 404).
func (r *Router) Route(fromRealm, user string) (Decision, bool) {
	for _, rt := range r.routes {
		if rt.from != fromRealm {
			continue
		}
		if rt.prefix != "" && !strings.HasPrefix(user, rt.prefix) {
			continue
		}
		if rt.re != nil && !rt.re.MatchString(user) {
			continue
		}
		return rt.d, true
	}
	return Decision{}, false
}
