package policy_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/policy"
)

func mustTrunk(t *testing.T, c config.Trunk) *policy.Trunk {
	t.Helper()
	if c.Options.DownAfter == 0 {
		c.Options.DownAfter, c.Options.UpAfter = 2, 2
	}
	tr, err := policy.NewTrunk(c)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// testPlan: trunks a and b share priority 1 (weights 3:1), c is the
// fallback; a night rule sends calls to c only; emergency numbers to a.
func testPlan(t *testing.T) (*policy.Router, map[string]*policy.Trunk) {
	t.Helper()
	ts := map[string]*policy.Trunk{
		"a": mustTrunk(t, config.Trunk{Name: "a", Realm: "carrier", Targets: []string{"203.0.113.10:5060", "203.0.113.11:5060"},
			Normalize: config.Normalize{
				Outbound: []config.NumberRule{{StripPrefix: "+49", AddPrefix: "0"}, {StripPrefix: "+", AddPrefix: "00"}},
				Inbound:  []config.NumberRule{{StripPrefix: "00", AddPrefix: "+"}, {StripPrefix: "0", AddPrefix: "+49"}},
			}}),
		"b": mustTrunk(t, config.Trunk{Name: "b", Realm: "carrier", Targets: []string{"203.0.113.20:5060"}, TargetTimeout: config.Duration(3 * time.Second)}),
		"c": mustTrunk(t, config.Trunk{Name: "c", Realm: "carrier", Targets: []string{"203.0.113.30:5070;transport=tcp"},
			Normalize: config.Normalize{Outbound: []config.NumberRule{{StripPrefix: "+", AddPrefix: ""}}}}),
	}
	rules := []config.DialRule{
		{Name: "default", FromRealm: "enterprise", Prefix: "+", Priority: 100, Trunks: []config.TrunkChoice{
			{Trunk: "a", Priority: 1, Weight: 3}, {Trunk: "b", Priority: 1, Weight: 1}, {Trunk: "c", Priority: 2, Weight: 1}}},
		{Name: "night", FromRealm: "enterprise", Prefix: "+", Priority: 50,
			Time:   []config.TimeWindow{{From: "22:00", To: "06:00", Timezone: "Europe/Berlin"}},
			Trunks: []config.TrunkChoice{{Trunk: "c", Weight: 1}}},
		{Name: "emergency", FromRealm: "enterprise", Regex: `^(110|112)$`, Priority: 1, Trunks: []config.TrunkChoice{{Trunk: "a", Weight: 1}}},
		{Name: "weekend-de", FromRealm: "enterprise", Prefix: "+49", Priority: 60,
			Time:   []config.TimeWindow{{Days: []string{"sat", "sun"}, From: "00:00", To: "24:00", Timezone: "Europe/Berlin"}},
			Trunks: []config.TrunkChoice{{Trunk: "b", Weight: 1}}},
	}
	r, err := policy.NewRouter(testRoutes())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetDialplan([]*policy.Trunk{ts["a"], ts["b"], ts["c"]}, rules); err != nil {
		t.Fatal(err)
	}
	return r, ts
}

func at(s string) func() time.Time {
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return func() time.Time { return tm }
}

func targets(d policy.Decision) []string {
	var out []string
	for i, tg := range d.Targets {
		name := "-"
		if tr := d.Trunk(i); tr != nil {
			name = tr.Name
		}
		out = append(out, name+"="+tg.String())
	}
	return out
}

func TestDialplan(t *testing.T) {
	// Wednesday 2026-11-25 12:00 UTC (13:00 in Berlin); Saturday 28th.
	const weekday, night, earlyMorning, saturday = "2026-11-25T12:00:00Z", "2026-11-25T22:30:00Z", "2026-11-26T04:59:00Z", "2026-11-28T12:00:00Z"
	first := func(int) int { return 0 } // weighted pick: always the first left
	last := func(n int) int { return n - 1 }
	cases := []struct {
		name, when, realm, user, source string
		intn                            func(int) int
		route                           string
		want                            []string
		called                          string // number after inbound normalization
	}{
		{"priority group, weight pick first", weekday, "enterprise", "+4930123", "198.51.100.10:5060", first, "default",
			[]string{"a=203.0.113.10:5060;transport=udp", "a=203.0.113.11:5060;transport=udp", "b=203.0.113.20:5060;transport=udp", "c=203.0.113.30:5070;transport=tcp"}, "+4930123"},
		{"weight pick last", weekday, "enterprise", "+4930123", "198.51.100.10:5060", last, "default",
			[]string{"b=203.0.113.20:5060;transport=udp", "a=203.0.113.10:5060;transport=udp", "a=203.0.113.11:5060;transport=udp", "c=203.0.113.30:5070;transport=tcp"}, "+4930123"},
		{"regex with lower priority number wins", weekday, "enterprise", "112", "198.51.100.10:5060", first, "emergency",
			[]string{"a=203.0.113.10:5060;transport=udp", "a=203.0.113.11:5060;transport=udp"}, "112"},
		{"night window (Berlin 23:30)", night, "enterprise", "+4930123", "", first, "night",
			[]string{"c=203.0.113.30:5070;transport=tcp"}, "+4930123"},
		{"night window wraps past midnight (05:59)", earlyMorning, "enterprise", "+15551234", "", first, "night",
			[]string{"c=203.0.113.30:5070;transport=tcp"}, "+15551234"},
		{"weekend rule by weekday", saturday, "enterprise", "+4930123", "", first, "weekend-de",
			[]string{"b=203.0.113.20:5060;transport=udp"}, "+4930123"},
		{"weekend rule not for +1", saturday, "enterprise", "+15551234", "", first, "default", nil, "+15551234"},
		{"no dial plan match: plain routes", weekday, "enterprise", "911", "", first, "emergency", []string{"-=203.0.113.20:5060;transport=tcp"}, "911"},
		{"from trunk a: 00 to +, then routes", weekday, "carrier", "0015559990000", "203.0.113.11:5060", first, "carrier-prefix",
			[]string{"-=192.0.2.10:5070;transport=udp"}, "+15559990000"},
		{"from trunk a: 00 international", weekday, "carrier", "0015551234567", "203.0.113.10:5060", first, "did-range",
			[]string{"-=198.51.100.10:5060;transport=udp"}, "+15551234567"},
		{"unknown source: no normalization", weekday, "carrier", "015551234567", "203.0.113.99:5060", first, "", nil, ""},
		{"trunk source in another realm does not count", weekday, "enterprise", "0112", "203.0.113.10:5060", first, "intl", nil, "0112"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := testPlan(t)
			r.SetTestHooks(at(c.when), c.intn)
			d, ok := r.RouteCall(policy.Call{Realm: c.realm, User: c.user, Source: c.source})
			if ok != (c.route != "") || d.Route != c.route {
				t.Fatalf("route %q ok=%v, want %q", d.Route, ok, c.route)
			}
			if !ok {
				return
			}
			if c.want != nil && !reflect.DeepEqual(targets(d), c.want) {
				t.Fatalf("targets %v\nwant    %v", targets(d), c.want)
			}
			if d.Called != c.called {
				t.Fatalf("called %q, want %q", d.Called, c.called)
			}
		})
	}
}

// TestDialplanWeights: among equal priority, a is first about 3 times as
// often as b (weights 3:1), and c (priority 2) is never first.
func TestDialplanWeights(t *testing.T) {
	r, _ := testPlan(t)
	rng := rand.New(rand.NewPCG(1, 2))
	r.SetTestHooks(at("2026-11-25T12:00:00Z"), rng.IntN)
	firsts := map[string]int{}
	const n = 4000
	for i := 0; i < n; i++ {
		d, _ := r.RouteCall(policy.Call{Realm: "enterprise", User: "+33123"})
		firsts[d.Trunk(0).Name]++
		if d.Trunk(len(d.Targets)-1).Name != "c" {
			t.Fatalf("c is not last: %v", targets(d))
		}
	}
	if firsts["c"] != 0 {
		t.Fatalf("c first %d times", firsts["c"])
	}
	ratio := float64(firsts["a"]) / float64(firsts["b"])
	if ratio < 2.6 || ratio > 3.4 {
		t.Fatalf("a:b first = %d:%d (%.2f), want about 3", firsts["a"], firsts["b"], ratio)
	}
}

// TestDialplanSkipsDownTargets: keepalive results remove targets, then
// whole trunks; with every trunk down the rule matches with no targets.
func TestDialplanSkipsDownTargets(t *testing.T) {
	r, ts := testPlan(t)
	r.SetTestHooks(at("2026-11-25T12:00:00Z"), func(int) int { return 0 })
	now := time.Now()
	down := func(tr *policy.Trunk, host string, port int, transport string) {
		for i := 0; i < 2; i++ {
			tr.Probe(config.Target{Host: host, Port: port, Transport: transport}, false, 0, now)
		}
	}
	route := func() []string {
		d, ok := r.RouteCall(policy.Call{Realm: "enterprise", User: "+4930"})
		if !ok || d.Route != "default" {
			t.Fatalf("route %q %v", d.Route, ok)
		}
		return targets(d)
	}
	// One failure is not enough (down_after 2).
	ts["a"].Probe(config.Target{Host: "203.0.113.10", Port: 5060, Transport: "udp"}, false, 0, now)
	if got := route(); len(got) != 4 {
		t.Fatalf("after one failure: %v", got)
	}
	down(ts["a"], "203.0.113.10", 5060, "udp")
	if got := route(); !reflect.DeepEqual(got, []string{"a=203.0.113.11:5060;transport=udp", "b=203.0.113.20:5060;transport=udp", "c=203.0.113.30:5070;transport=tcp"}) {
		t.Fatalf("a1 down: %v", got)
	}
	down(ts["a"], "203.0.113.11", 5060, "udp")
	down(ts["b"], "203.0.113.20", 5060, "udp")
	if got := route(); !reflect.DeepEqual(got, []string{"c=203.0.113.30:5070;transport=tcp"}) {
		t.Fatalf("a, b down: %v", got)
	}
	down(ts["c"], "203.0.113.30", 5070, "tcp")
	if got := route(); len(got) != 0 {
		t.Fatalf("all down: %v", got)
	}
	// b comes back after up_after (2) successes, not one.
	tg := config.Target{Host: "203.0.113.20", Port: 5060, Transport: "udp"}
	if ch, up := ts["b"].Probe(tg, true, 200, now); ch || up {
		t.Fatalf("one success: changed %v up %v", ch, up)
	}
	if ch, up := ts["b"].Probe(tg, true, 200, now); !ch || !up {
		t.Fatalf("two successes: changed %v up %v", ch, up)
	}
	if got := route(); !reflect.DeepEqual(got, []string{"b=203.0.113.20:5060;transport=udp"}) {
		t.Fatalf("b back: %v", got)
	}
	st, _ := ts["b"].Status()
	if st[0].State != "up" || st[0].Probes != 4 || st[0].Failures != 2 {
		t.Fatalf("status %+v", st[0])
	}
}

func TestNormalize(t *testing.T) {
	out := []config.NumberRule{{StripPrefix: "+49", AddPrefix: "0"}, {StripPrefix: "+", AddPrefix: "00"}}
	in := []config.NumberRule{{StripPrefix: "00", AddPrefix: "+"}, {StripPrefix: "0", AddPrefix: "+49"}, {AddPrefix: "+4930"}}
	cases := []struct {
		rules    []config.NumberRule
		in, want string
	}{
		{out, "+4930123456", "030123456"},
		{out, "+15551234", "0015551234"},
		{out, "4930", "4930"}, // no rule matches
		{out, "alice", "alice"},
		{out, "", ""},
		{out, "+49+1", "+49+1"}, // not a number
		{in, "0015551234", "+15551234"},
		{in, "030123", "+4930123"},
		{in, "123", "+4930123"}, // catch-all rule (no strip)
		{in, "*31#030", "+4930*31#030"},
		{nil, "+4930", "+4930"},
		{in, strings.Repeat("1", 33), strings.Repeat("1", 33)}, // too long to be a number
	}
	for _, c := range cases {
		if got := policy.Normalize(c.in, c.rules); got != c.want {
			t.Errorf("Normalize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Round trip through a trunk: E.164 -> trunk -> E.164.
	tr := mustTrunk(t, config.Trunk{Name: "x", Realm: "carrier", Targets: []string{"203.0.113.1"},
		Normalize: config.Normalize{Outbound: out, Inbound: in[:2]}})
	for _, n := range []string{"+4930123", "+15551234", "+442071234567"} {
		if got := tr.FromTrunk(tr.ToTrunk(n)); got != n {
			t.Errorf("round trip %s -> %s -> %s", n, tr.ToTrunk(n), got)
		}
	}
}

func TestTimeWindows(t *testing.T) {
	mk := func(w config.TimeWindow) *policy.Router {
		tr := mustTrunk(t, config.Trunk{Name: "t", Realm: "carrier", Targets: []string{"203.0.113.1"}})
		r, _ := policy.NewRouter(nil)
		if err := r.SetDialplan([]*policy.Trunk{tr}, []config.DialRule{{Name: "w", FromRealm: "e", Time: []config.TimeWindow{w}, Trunks: []config.TrunkChoice{{Trunk: "t"}}}}); err != nil {
			t.Fatal(err)
		}
		return r
	}
	cases := []struct {
		w    config.TimeWindow
		when string
		in   bool
	}{
		{config.TimeWindow{From: "08:00", To: "18:00"}, "2026-11-25T08:00:00Z", true},
		{config.TimeWindow{From: "08:00", To: "18:00"}, "2026-11-25T17:59:59Z", true},
		{config.TimeWindow{From: "08:00", To: "18:00"}, "2026-11-25T18:00:00Z", false},
		{config.TimeWindow{From: "08:00", To: "18:00"}, "2026-11-25T07:59:00Z", false},
		{config.TimeWindow{From: "08:00", To: "18:00", Timezone: "America/New_York"}, "2026-11-25T12:59:00Z", false}, // 07:59 EST
		{config.TimeWindow{From: "08:00", To: "18:00", Timezone: "America/New_York"}, "2026-11-25T13:00:00Z", true},
		{config.TimeWindow{Days: []string{"mon", "tue"}, From: "00:00", To: "24:00"}, "2026-11-24T23:59:00Z", true}, // Tuesday
		{config.TimeWindow{Days: []string{"mon", "tue"}, From: "00:00", To: "24:00"}, "2026-11-25T00:00:00Z", false},
		// Friday night to Saturday morning belongs to Friday.
		{config.TimeWindow{Days: []string{"fri"}, From: "22:00", To: "02:00"}, "2026-11-28T01:30:00Z", true},
		{config.TimeWindow{Days: []string{"fri"}, From: "22:00", To: "02:00"}, "2026-11-27T01:30:00Z", false}, // Thursday night
		{config.TimeWindow{Days: []string{"fri"}, From: "22:00", To: "02:00"}, "2026-11-27T22:00:00Z", true},
		{config.TimeWindow{Days: []string{"fri"}, From: "22:00", To: "02:00"}, "2026-11-28T02:00:00Z", false},
		// DST: Berlin is UTC+2 in July.
		{config.TimeWindow{From: "09:00", To: "10:00", Timezone: "Europe/Berlin"}, "2026-07-01T07:30:00Z", true},
		{config.TimeWindow{From: "09:00", To: "10:00", Timezone: "Europe/Berlin"}, "2026-12-01T07:30:00Z", false},
	}
	for i, c := range cases {
		r := mk(c.w)
		r.SetTestHooks(at(c.when), nil)
		_, ok := r.RouteCall(policy.Call{Realm: "e", User: "1"})
		if ok != c.in {
			t.Errorf("case %d %+v at %s: in=%v, want %v", i, c.w, c.when, ok, c.in)
		}
	}
}

// fakeDNS answers SRV and A lookups from maps (the resolver is the one
// thing here that would need a DNS server).
type fakeDNS struct {
	srv   map[string][]*net.SRV
	hosts map[string][]string
	fail  bool
}

func (f *fakeDNS) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	if f.fail {
		return "", nil, errors.New("SERVFAIL")
	}
	k := fmt.Sprintf("_%s._%s.%s", service, proto, name)
	if s, ok := f.srv[k]; ok {
		return k, s, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: k, IsNotFound: true}
}

func (f *fakeDNS) LookupHost(_ context.Context, host string) ([]string, error) {
	if f.fail {
		return nil, errors.New("SERVFAIL")
	}
	if a, ok := f.hosts[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestTrunkResolve(t *testing.T) {
	dns := &fakeDNS{
		srv: map[string][]*net.SRV{
			"_sip._udp.carrier.example": {{Target: "p1.carrier.example.", Port: 5060, Priority: 10}, {Target: "p2.carrier.example.", Port: 5062, Priority: 20}},
			"_sip._tcp.carrier.example": {{Target: "p3.carrier.example.", Port: 5070, Priority: 10}},
		},
		hosts: map[string][]string{
			"p1.carrier.example": {"2001:db8::1", "203.0.113.41"},
			"p2.carrier.example": {"203.0.113.42"},
			"p3.carrier.example": {"203.0.113.43"},
			"a-only.example":     {"203.0.113.44"},
			"fixed-port.example": {"203.0.113.45"},
		},
	}
	tr := mustTrunk(t, config.Trunk{Name: "d", Realm: "carrier", Targets: []string{
		"carrier.example", "carrier.example;transport=tcp", "a-only.example", "fixed-port.example:5080", "203.0.113.46"}})
	if !tr.NeedsDNS() {
		t.Fatal("NeedsDNS false")
	}
	if got := len(tr.Targets()); got != 1 { // only the literal before DNS
		t.Fatalf("before resolve: %v", tr.Targets())
	}
	if err := tr.Resolve(context.Background(), dns); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range tr.Targets() {
		got = append(got, tg.String())
	}
	want := []string{
		"203.0.113.41:5060;transport=udp", "[2001:db8::1]:5060;transport=udp", "203.0.113.42:5062;transport=udp",
		"203.0.113.43:5070;transport=tcp", "203.0.113.44:5060;transport=udp", "203.0.113.45:5080;transport=udp",
		"203.0.113.46:5060;transport=udp",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("resolved %v\nwant     %v", got, want)
	}
	if !tr.HasSource("203.0.113.42") || tr.HasSource("203.0.113.99") {
		t.Fatal("HasSource")
	}
	// Health survives a re-resolve; a DNS outage keeps the old targets.
	tg := config.Target{Host: "203.0.113.42", Port: 5062, Transport: "udp"}
	tr.Probe(tg, false, 0, time.Now())
	tr.Probe(tg, false, 0, time.Now())
	for _, fail := range []bool{true, false} {
		dns.fail = fail
		if err := tr.Resolve(context.Background(), dns); (err != nil) != fail || err != nil && !errors.Is(err, policy.ErrDNS) {
			t.Fatalf("DNS fail=%v: %v", fail, err)
		}
		st, dnsErr := tr.Status()
		if len(st) != len(want) || (dnsErr != "") != fail {
			t.Fatalf("DNS fail=%v: %d targets (%q), want %d", fail, len(st), dnsErr, len(want))
		}
		for _, s := range st {
			if s.Target == tg.String() && s.State != "down" {
				t.Fatalf("DNS fail=%v: %s lost its down state over a re-resolve: %+v", fail, tg, s)
			}
		}
	}
	only := mustTrunk(t, config.Trunk{Name: "o", Realm: "carrier", Targets: []string{"carrier.example"}})
	if err := only.Resolve(context.Background(), dns); err != nil {
		t.Fatal(err)
	}
	dns.fail = true
	if err := only.Resolve(context.Background(), dns); !errors.Is(err, policy.ErrDNS) {
		t.Fatalf("err %v, want ErrDNS", err)
	}
	if n := len(only.Targets()); n != 3 {
		t.Fatalf("DNS outage dropped targets: %v", only.Targets())
	}
	never := mustTrunk(t, config.Trunk{Name: "n", Realm: "carrier", Targets: []string{"nowhere.example"}})
	if err := never.Resolve(context.Background(), dns); !errors.Is(err, policy.ErrNoTargets) {
		t.Fatalf("err %v, want ErrNoTargets", err)
	}
}

// TestInboundTrunkBySourcePort: two trunks on one carrier address are told
// apart by the source port; an unknown port falls back to the first trunk
// with that address.
func TestInboundTrunkBySourcePort(t *testing.T) {
	x := mustTrunk(t, config.Trunk{Name: "x", Realm: "carrier", Targets: []string{"203.0.113.10:5070"},
		Normalize: config.Normalize{Inbound: []config.NumberRule{{StripPrefix: "0", AddPrefix: "+33"}}}})
	y := mustTrunk(t, config.Trunk{Name: "y", Realm: "carrier", Targets: []string{"203.0.113.10:5060"},
		Normalize: config.Normalize{Inbound: []config.NumberRule{{StripPrefix: "0", AddPrefix: "+49"}}}})
	r, _ := policy.NewRouter([]config.Route{{Name: "all", FromRealm: "carrier", ToRealm: "enterprise", Targets: []string{"198.51.100.10:5060"}}})
	if err := r.SetDialplan([]*policy.Trunk{x, y}, nil); err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string]string{
		"203.0.113.10:5060": "+4930", "203.0.113.10:5070": "+3330", "203.0.113.10:9999": "+3330", "203.0.113.11:5060": "030",
	} {
		d, ok := r.RouteCall(policy.Call{Realm: "carrier", User: "030", Source: src})
		if !ok || d.Called != want {
			t.Errorf("from %s: called %q, want %q", src, d.Called, want)
		}
	}
}

// TestInboundToRegisteredAccount: a call to the registered account (the
// SBC's Contact) is routed by its To number.
func TestInboundToRegisteredAccount(t *testing.T) {
	tr := mustTrunk(t, config.Trunk{Name: "reg", Realm: "carrier", Targets: []string{"203.0.113.10:5060"},
		Credentials: &config.Credentials{Username: "acct1", Password: "x"}, Register: config.Registration{Enabled: true},
		Normalize: config.Normalize{Inbound: []config.NumberRule{{StripPrefix: "0", AddPrefix: "+49"}}}})
	r, _ := policy.NewRouter([]config.Route{{Name: "all", FromRealm: "carrier", ToRealm: "enterprise", Targets: []string{"198.51.100.10:5060"}}})
	if err := r.SetDialplan([]*policy.Trunk{tr}, nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ user, to, src, want string }{
		{"acct1", "030999", "203.0.113.10:5060", "+4930999"},
		{"030777", "030999", "203.0.113.10:5060", "+4930777"}, // a DID in the request-URI wins
		{"acct1", "030999", "203.0.113.99:5060", "acct1"},     // not from the trunk
		{"acct1", "", "203.0.113.10:5060", "acct1"},
	}
	for _, c := range cases {
		d, _ := r.RouteCall(policy.Call{Realm: "carrier", User: c.user, To: c.to, Source: c.src})
		if d.Called != c.want {
			t.Errorf("%+v: called %q, want %q", c, d.Called, c.want)
		}
	}
}
