package config_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/edgesbc/edgesbc/config"
)

// The header policy traps: an explicit allow with nothing in it, a list
// that silently dropped the defaults, and names that can never cross.
func TestHeaderPolicyTraps(t *testing.T) {
	hdr := func(block string) string {
		return edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    headers:\n"+block)
	}
	bad := []struct {
		name, yaml string
		want       []string
	}{
		{"allow with no list", hdr("      mode: allow\n"), []string{"realms[1].headers.list", "empty list"}},
		{"allow with an empty list", hdr("      mode: allow\n      list: []\n"), []string{"realms[1].headers.list", "empty list"}},
		{"replace with no list", hdr("      replace: true\n"), []string{"realms[1].headers.list", "empty list"}},
		{"replace in deny mode", hdr("      mode: deny\n      replace: true\n      list: [X-A]\n"), []string{"realms[1].headers.replace", "allow"}},
		{"Supported listed", hdr("      list: [Subject, Supported]\n"), []string{"realms[1].headers.list[1]", "rebuilt"}},
		{"Require listed", hdr("      mode: deny\n      list: [require]\n"), []string{"realms[1].headers.list[0]", "rebuilt"}},
		{"Allow listed", hdr("      list: [Allow]\n"), []string{"realms[1].headers.list[0]", "rebuilt"}},
		{"RSeq listed", hdr("      list: [RSeq]\n"), []string{"realms[1].headers.list[0]", "B2BUA's own"}},
		{"RAck listed", hdr("      list: [RAck]\n"), []string{"realms[1].headers.list[0]", "B2BUA's own"}},
		{"bad rpid", edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    rpid: keep\n"), []string{"realms[1].rpid", "drop or convert"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	c, err := config.Parse([]byte(hdr("      list: [X-Account, subject]\n")))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Realms[1].Headers.AllowedHeaders()
	want := append(append([]string(nil), config.DefaultAllowedHeaders...), "X-Account")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("custom list: allowed %v, want the defaults and X-Account once", got)
	}
	c, err = config.Parse([]byte(hdr("      replace: true\n      list: [X-Account]\n")))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Realms[1].Headers.AllowedHeaders(); !reflect.DeepEqual(got, []string{"X-Account"}) {
		t.Errorf("replace: allowed %v, want only X-Account", got)
	}
	c, err = config.Parse([]byte(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Realms[0].Headers.AllowedHeaders(); !reflect.DeepEqual(got, config.DefaultAllowedHeaders) {
		t.Errorf("no policy: allowed %v, want the defaults", got)
	}
	for _, n := range config.DefaultAllowedHeaders {
		l := strings.ToLower(n)
		if config.CapabilityHeaders[l] || config.ProtectedHeaders[l] || config.IdentityHeaders[l] {
			t.Errorf("%s is in the default allow list but never crosses raw", n)
		}
	}
}

// A realm is trusted when it says so, or when its peers are configured
// targets (a route's to_realm, a trunk's realm); a realm only calls come
// from is not.
func TestRealmTrust(t *testing.T) {
	oneWay := strings.Replace(baseYAML, `  - name: pbx-to-carrier
    from_realm: enterprise
    to_realm: carrier
    targets: ["203.0.113.10:5060", "203.0.113.11:5061;transport=tcp"]
`, "", 1)
	cases := []struct {
		name, yaml     string
		carrier, enter bool
	}{
		{"both route targets", baseYAML, true, true},
		{"carrier only a source", oneWay, false, true},
		{"carrier says trusted", strings.Replace(oneWay, "    transports: [udp, tcp]\n", "    transports: [udp, tcp]\n    trust: true\n", 1), true, true},
		{"enterprise says untrusted", edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    trust: false\n"), true, false},
		{"carrier a trunk's realm", oneWay + "trunks:\n  - {name: t1, realm: carrier, targets: [\"203.0.113.10:5060\"]}\n", true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatalf("%v\n%s", err, tc.yaml)
			}
			if got := c.Trusted("carrier"); got != tc.carrier {
				t.Errorf("carrier trusted = %v, want %v", got, tc.carrier)
			}
			if got := c.Trusted("enterprise"); got != tc.enter {
				t.Errorf("enterprise trusted = %v, want %v", got, tc.enter)
			}
			if c.Realms[0].RPID != config.RPIDDrop {
				t.Errorf("rpid default %q, want drop", c.Realms[0].RPID)
			}
		})
	}
}
