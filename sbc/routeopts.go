package sbc

import (
	"time"

	"github.com/edgesbc/edgesbc/config"
)

// routeOpts are the settings of a route that the B2BUA applies to each of
// its calls (the router decides only where a call goes).
type routeOpts struct {
	ring     time.Duration // ring_timeout
	as503    int           // relay_503_as; 0 keeps 503
	redirect redirectOpts  // redirect.go
}

func newRouteOpts(routes []config.Route) map[string]routeOpts {
	m := make(map[string]routeOpts, len(routes))
	for _, r := range routes {
		m[r.Name] = routeOpts{ring: r.RingTimeout.Std(), as503: r.Relay503As, redirect: newRedirectOpts(r.Redirect)}
	}
	return m
}

// routeOpts is route name's settings in this snapshot; the defaults for
// a call the dial plan routed, or a route without them.
func (p *policySnap) routeOpts(name string) routeOpts {
	o := p.routes[name]
	if o.ring <= 0 {
		o.ring = config.DefaultRingTimeout
	}
	if o.redirect.maxHops == 0 { // a dial plan call: the defaults
		o.redirect.maxHops, o.redirect.diversion = config.DefaultRedirectHops, config.DiversionNone
	}
	return o
}

// statusPhrase is RFC 3261's reason phrase for the failure codes a
// relay_503_as may name.
func statusPhrase(code int) string {
	if p, ok := phrases[code]; ok {
		return p
	}
	switch {
	case code >= 600:
		return "Global Failure"
	case code >= 500:
		return "Server Failure"
	default:
		return "Request Failure"
	}
}

var phrases = map[int]string{
	400: "Bad Request", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
	410: "Gone", 480: "Temporarily Unavailable", 486: "Busy Here", 487: "Request Terminated",
	488: "Not Acceptable Here", 500: "Server Internal Error", 502: "Bad Gateway",
	503: "Service Unavailable", 504: "Server Time-out", 600: "Busy Everywhere",
	603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}
