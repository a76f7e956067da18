package policy_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/policy"
)

func testRoutes() []config.Route {
	return []config.Route{
		{Name: "emergency", FromRealm: "enterprise", ToRealm: "carrier", UserRegex: `^(911|112)$`,
			Targets: []string{"203.0.113.20:5060;transport=tcp"}, TargetTimeout: config.Duration(500 * time.Millisecond)},
		{Name: "intl", FromRealm: "enterprise", ToRealm: "carrier", UserPrefix: "011",
			Targets: []string{"203.0.113.30:5060", "203.0.113.31:5080;transport=tcp", "[2001:db8::31]:5060"}, TargetTimeout: config.Duration(3 * time.Second)},
		{Name: "us-shadowed", FromRealm: "enterprise", ToRealm: "carrier", UserPrefix: "0112",
			Targets: []string{"203.0.113.99:5060"}, TargetTimeout: config.Duration(time.Second)},
		{Name: "ent-default", FromRealm: "enterprise", ToRealm: "carrier",
			Targets: []string{"203.0.113.10:5060", "203.0.113.11:5060"}, TargetTimeout: config.Duration(2 * time.Second)},
		{Name: "did-range", FromRealm: "carrier", ToRealm: "enterprise", UserRegex: `^\+1555123\d{4}$`,
			Targets: []string{"198.51.100.10:5060;transport=udp"}, TargetTimeout: config.Duration(2 * time.Second)},
		{Name: "carrier-prefix", FromRealm: "carrier", ToRealm: "lab", UserPrefix: "+1555",
			Targets: []string{"192.0.2.10:5070"}, TargetTimeout: config.Duration(10 * time.Second)},
	}
}

func TestRoute(t *testing.T) {
	r, err := policy.NewRouter(testRoutes())
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	cases := []struct {
		from, user string
		want       string // route name, "" for no match
	}{
		{"enterprise", "911", "emergency"},
		{"enterprise", "112", "emergency"},
		{"enterprise", "9110", "ent-default"}, // anchored regex does not match
		{"enterprise", "011441234", "intl"},
		{"enterprise", "0112345", "intl"}, // first match wins over the longer prefix after it
		{"enterprise", "01", "ent-default"},
		{"enterprise", "", "ent-default"},
		{"enterprise", "+15551234567", "ent-default"},
		{"carrier", "+15551234567", "did-range"},
		{"carrier", "+15551239999", "did-range"},
		{"carrier", "+155512345678", "carrier-prefix"}, // too long for the regex
		{"carrier", "+15559990000", "carrier-prefix"},
		{"carrier", "15551234567", ""},
		{"carrier", "911", ""}, // enterprise-only route
		{"carrier", "", ""},
		{"lab", "911", ""},
		{"Enterprise", "911", ""}, // realm names are exact
		{"", "911", ""},
	}
	for _, c := range cases {
		d, ok := r.Route(c.from, c.user)
		if ok != (c.want != "") || d.Route != c.want {
			t.Errorf("Route(%q, %q) = %q, %v; want %q", c.from, c.user, d.Route, ok, c.want)
		}
		if !ok && !reflect.DeepEqual(d, policy.Decision{}) {
			t.Errorf("Route(%q, %q) no match but Decision = %+v", c.from, c.user, d)
		}
	}
}

func TestRouteDecision(t *testing.T) {
	r, err := policy.NewRouter(testRoutes())
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	cases := []struct {
		from, user string
		want       policy.Decision
	}{
		{"enterprise", "911", policy.Decision{
			Route: "emergency", ToRealm: "carrier", TargetTimeout: 500 * time.Millisecond,
			Targets: []config.Target{{Host: "203.0.113.20", Port: 5060, Transport: "tcp"}},
		}},
		{"enterprise", "0114420", policy.Decision{
			Route: "intl", ToRealm: "carrier", TargetTimeout: 3 * time.Second,
			Targets: []config.Target{
				{Host: "203.0.113.30", Port: 5060, Transport: "udp"},
				{Host: "203.0.113.31", Port: 5080, Transport: "tcp"},
				{Host: "2001:db8::31", Port: 5060, Transport: "udp"},
			},
		}},
		{"enterprise", "4000", policy.Decision{
			Route: "ent-default", ToRealm: "carrier", TargetTimeout: 2 * time.Second,
			Targets: []config.Target{
				{Host: "203.0.113.10", Port: 5060, Transport: "udp"},
				{Host: "203.0.113.11", Port: 5060, Transport: "udp"},
			},
		}},
		{"carrier", "+15551230000", policy.Decision{
			Route: "did-range", ToRealm: "enterprise", TargetTimeout: 2 * time.Second,
			Targets: []config.Target{{Host: "198.51.100.10", Port: 5060, Transport: "udp"}},
		}},
		{"carrier", "+15550000000", policy.Decision{
			Route: "carrier-prefix", ToRealm: "lab", TargetTimeout: 10 * time.Second,
			Targets: []config.Target{{Host: "192.0.2.10", Port: 5070, Transport: "udp"}},
		}},
	}
	for _, c := range cases {
		d, ok := r.Route(c.from, c.user)
		if !ok {
			t.Errorf("Route(%q, %q): no match, want %s", c.from, c.user, c.want.Route)
			continue
		}
		if !reflect.DeepEqual(d, c.want) {
			t.Errorf("Route(%q, %q) =\n  %+v\nwant\n  %+v", c.from, c.user, d, c.want)
		}
	}
}

// Routes from a parsed config route the way the config reads.
func TestRouterFromConfig(t *testing.T) {
	cfg, err := config.Parse([]byte(`realms:
  - name: carrier
    listen: 203.0.113.1:5060
  - name: enterprise
    listen: 198.51.100.1:5060
routes:
  - name: to-pbx
    from_realm: carrier
    to_realm: enterprise
    targets: ["198.51.100.10:5060;transport=tcp", "198.51.100.11:5060"]
  - name: to-carrier
    from_realm: enterprise
    to_realm: carrier
    user_prefix: "9"
    target_timeout: 750ms
    targets: ["203.0.113.10:5060"]
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	r, err := policy.NewRouter(cfg.Routes)
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	d, ok := r.Route("carrier", "anything")
	want := policy.Decision{Route: "to-pbx", ToRealm: "enterprise", TargetTimeout: 2 * time.Second, Targets: []config.Target{
		{Host: "198.51.100.10", Port: 5060, Transport: "tcp"}, {Host: "198.51.100.11", Port: 5060, Transport: "udp"},
	}}
	if !ok || !reflect.DeepEqual(d, want) {
		t.Errorf("Route(carrier) = %+v, %v; want %+v", d, ok, want)
	}
	d, ok = r.Route("enterprise", "915551234567")
	if !ok || d.Route != "to-carrier" || d.TargetTimeout != 750*time.Millisecond {
		t.Errorf("Route(enterprise, 9...) = %+v, %v", d, ok)
	}
	if _, ok := r.Route("enterprise", "5551234567"); ok {
		t.Errorf("Route(enterprise, 5...) matched, want no route")
	}
}

func TestNewRouterErrors(t *testing.T) {
	cases := []struct {
		name   string
		routes []config.Route
		want   string
	}{
		{"bad regex", []config.Route{
			{Name: "ok", FromRealm: "a", ToRealm: "b", Targets: []string{"192.0.2.1:5060"}},
			{Name: "bad", FromRealm: "a", ToRealm: "b", UserRegex: "([", Targets: []string{"192.0.2.1:5060"}},
		}, "routes[1].user_regex"},
		{"bad target", []config.Route{
			{Name: "bad", FromRealm: "a", ToRealm: "b", Targets: []string{"192.0.2.1:5060", "pbx.example:5060"}},
		}, "routes[0].targets[1]"},
	}
	for _, c := range cases {
		r, err := policy.NewRouter(c.routes)
		if err == nil || r != nil {
			t.Errorf("%s: NewRouter = %v, %v; want an error", c.name, r, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not name %s", c.name, err, c.want)
		}
	}
	r, err := policy.NewRouter(nil)
	if err != nil {
		t.Fatalf("NewRouter(nil): %v", err)
	}
	if d, ok := r.Route("carrier", "1"); ok {
		t.Errorf("empty router matched: %+v", d)
	}
}
