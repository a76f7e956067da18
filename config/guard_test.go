package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/config"
)

const guardYAML = `guard:
  sources: {rate: 50}
  realms:
    - realm: carrier
      acl: {allow: ["203.0.113.0/24", "192.0.2.7"]}
      admission: {max_calls: 10, max_cps: 5}
    - realm: enterprise
      auth:
        users: [{name: pbx, password: s3cret}]
      registrar: {aor: pbx}
`

func TestGuardDefaults(t *testing.T) {
	c, err := config.Parse([]byte(baseYAML + guardYAML))
	if err != nil {
		t.Fatal(err)
	}
	g := c.Guard
	if g.Sources.Burst != 100 || g.Sources.MaxSources != 65536 {
		t.Errorf("sources %+v", g.Sources)
	}
	if g.Bans.Duration.Std() != 5*time.Minute || g.Bans.RateExcess != 20 || g.Bans.AuthFailures != 5 || g.Bans.Malformed != 10 || g.Bans.Window.Std() != time.Minute {
		t.Errorf("bans %+v", g.Bans)
	}
	if s := g.Scanners(); len(s) != 3 || s[0] != "friendly-scanner" {
		t.Errorf("scanners %v", s)
	}
	car, ent := g.RealmPolicy("carrier"), g.RealmPolicy("enterprise")
	if car.ACL.Action != "reject" || car.Admission.RetryAfter.Std() != 5*time.Second {
		t.Errorf("carrier %+v %+v", car.ACL, car.Admission)
	}
	if a := ent.Auth; strings.Join(a.Methods, ",") != "INVITE,REGISTER" || strings.Join(a.Algorithms, ",") != "SHA-256,MD5" || a.NonceTTL.Std() != 5*time.Minute {
		t.Errorf("auth %+v", a)
	}
	if r := ent.Registrar; r.MaxBindings != 1000 || r.MinExpires.Std() != time.Minute || r.DefaultExpires.Std() != time.Hour {
		t.Errorf("registrar %+v", r)
	}
	// No guard section: protection on (guard_defaults.go).
	c, err = config.Parse([]byte(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	if g := c.Guard; g.Defaults != "on" || g.Sources.Rate != 20 || g.Sources.Burst != 40 || g.Sources.MaxCalls != 10 ||
		g.PeerLimits.Rate != 50000 || g.PeerLimits.Burst != 100000 || g.PeerLimits.MaxCalls != 0 ||
		len(g.Scanners()) != 3 || g.Bans.RateExcess != 20 || g.Bans.Malformed != 10 || g.Bans.AuthFailures != 0 {
		t.Errorf("default guard %+v", c.Guard)
	}
	// defaults: off: nothing on, as before issue 16.
	c, err = config.Parse([]byte(baseYAML + "guard: {defaults: off}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if g := c.Guard; g.Sources.Rate != 0 || g.PeerLimits.Rate != 0 || g.Sources.MaxCalls != 0 || len(g.Scanners()) != 0 || g.Bans.RateExcess != 0 || g.Bans.Malformed != 0 {
		t.Errorf("guard with defaults off %+v", c.Guard)
	}
	// One key off, the others on: an explicit 0 is not a default.
	c, err = config.Parse([]byte(baseYAML + "guard: {sources: {rate: 0}, bans: {malformed: 0}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if g := c.Guard; g.Sources.Rate != 0 || g.Bans.RateExcess != 0 || g.Bans.Malformed != 0 || g.PeerLimits.Rate != 50000 || g.Sources.MaxCalls != 10 {
		t.Errorf("guard with sources.rate and bans.malformed 0: %+v", c.Guard)
	}
	c, err = config.Parse([]byte(baseYAML + "guard: {scanner_user_agents: []}\n"))
	if err != nil || len(c.Guard.Scanners()) != 0 {
		t.Errorf("empty scanner list: %v %v", err, c.Guard.Scanners())
	}
}

func TestGuardInvalid(t *testing.T) {
	for _, tc := range []struct {
		old, new, key string
	}{
		{"rate: 50", "rate: -1", "guard.sources.rate"},
		{"sources: {rate: 50}", "sources: {rate: 5, burst: -1}", "guard.sources.burst"},
		{"sources: {rate: 50}", "bans: {duration: 10ms}", "guard.bans.duration"},
		{"sources: {rate: 50}", "bans: {auth_failures: -1}", "guard.bans.auth_failures"},
		{"sources: {rate: 50}", "scanner_user_agents: [\"\"]", "guard.scanner_user_agents[0]"},
		{"realm: carrier", "realm: nowhere", "guard.realms[0].realm"},
		{"realm: enterprise", "realm: carrier", "guard.realms[1].realm"},
		{`"192.0.2.7"`, `"192.0.2.300"`, "guard.realms[0].acl.allow[1]"},
		{`allow: ["203.0.113.0/24", "192.0.2.7"]`, `allow: ["203.0.113.0/24"], action: deny`, "guard.realms[0].acl.action"},
		{`allow: ["203.0.113.0/24", "192.0.2.7"]`, `allow: []`, "guard.realms[0].acl.allow"},
		{"max_calls: 10", "max_calls: -1", "guard.realms[0].admission.max_calls"},
		{"max_cps: 5", "max_cps: 5, retry_after: 0.5s", "guard.realms[0].admission.retry_after"},
		{"users: [{name: pbx, password: s3cret}]", "users: []", "guard.realms[1].auth.users"},
		{"users: [{name: pbx, password: s3cret}]", "users: [{name: pbx, password: \"\"}]", "guard.realms[1].auth.users[0].password"},
		{"users: [{name: pbx, password: s3cret}]", "users: [{name: pbx, password: a}, {name: pbx, password: b}]", "guard.realms[1].auth.users[1].name"},
		{"users: [{name: pbx, password: s3cret}]", "users: [{name: pbx, password: a}]\n        algorithms: [SHA-512]", "guard.realms[1].auth.algorithms[0]"},
		{"users: [{name: pbx, password: s3cret}]", "users: [{name: pbx, password: a}]\n        methods: [BYE]", "guard.realms[1].auth.methods[0]"},
		{"registrar: {aor: pbx}", "registrar: {aor: \"pbx@x\"}", "guard.realms[1].registrar.aor"},
		{"registrar: {aor: pbx}", "registrar: {min_expires: 2h}", "guard.realms[1].registrar.min_expires"},
		{"registrar: {aor: pbx}", "registrar: {colour: red}", "colour"},
	} {
		if strings.Count(guardYAML, tc.old) != 1 {
			t.Fatalf("%q not once in guardYAML", tc.old)
		}
		_, err := config.Parse([]byte(baseYAML + strings.Replace(guardYAML, tc.old, tc.new, 1)))
		if err == nil || !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %v, want one naming %s", tc.new, err, tc.key)
		}
	}
}

func TestGuardClassificationKeys(t *testing.T) {
	for _, c := range []struct{ yaml, err string }{
		{"guard: {realms: [{realm: carrier, accept: any}]}\n", "guard.realms[0].auth: accept: any"},
		{"guard: {realms: [{realm: carrier, accept: any, allow_unauthenticated: true}]}\n", ""},
		{"guard: {defaults: off, realms: [{realm: carrier, accept: any}]}\n", ""},
		{"guard: {realms: [{realm: carrier, accept: some}]}\n", "guard.realms[0].accept"},
		{"guard: {realms: [{realm: carrier, unknown: ignore}]}\n", "guard.realms[0].unknown"},
		{"guard: {realms: [{realm: carrier, options: all}]}\n", "guard.realms[0].options"},
		{"guard: {realms: [{realm: carrier, peers: [not-a-net]}]}\n", "guard.realms[0].peers[0]"},
		{"guard: {defaults: maybe}\n", "guard.defaults"},
		{"guard: {sources: {max_calls: -1}}\n", "guard.sources.max_calls"},
	} {
		_, err := config.Parse([]byte(baseYAML + c.yaml))
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.yaml, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one naming %s", c.yaml, err, c.err)
		}
	}
	c, err := config.Parse([]byte(baseYAML + "guard: {realms: [{realm: carrier, peers: [192.0.2.0/24]}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Guard.RealmPolicy("carrier"); p.Accept != "peers" || p.Unknown != "auto" || p.Options != "peers" {
		t.Errorf("realm defaults %+v", p)
	}
	out := c.EffectiveGuard()
	for _, want := range []string{"defaults on", "unknown sources: 20/s, burst 40, concurrent calls 10", "known peers: 50000/s", "realm carrier: accept peers (others: dropped over UDP, 403 over TCP/TLS)", "known peers 192.0.2.0/24"} {
		if !strings.Contains(out, want) {
			t.Errorf("effective guard lacks %q:\n%s", want, out)
		}
	}
}
