package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgesbc/edgesbc/config"
)

func TestRedirectDefaults(t *testing.T) {
	c, err := config.Parse([]byte(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range c.Routes {
		r := rt.Redirect
		if r.Mode != "follow" || r.MaxHops != 3 || r.Diversion != "none" || len(r.Allow)+len(r.Deny) != 0 {
			t.Errorf("route %s redirect = %+v, want follow, 3 hops, no diversion, no networks", rt.Name, r)
		}
	}
	c, err = config.Parse([]byte(edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    redirect: {mode: relay, max_hops: 10, diversion: history-info, allow: [203.0.113.0/24], deny: [\"2001:db8::/32\"]}\n")))
	if err != nil {
		t.Fatal(err)
	}
	allow, deny := c.Routes[0].Redirect.Networks()
	if c.Routes[0].Redirect.Mode != "relay" || len(allow) != 1 || allow[0].String() != "203.0.113.0/24" || len(deny) != 1 || deny[0].String() != "2001:db8::/32" {
		t.Errorf("redirect = %+v, networks %v %v", c.Routes[0].Redirect, allow, deny)
	}
}

func TestRedirectBad(t *testing.T) {
	cases := []struct{ name, redirect, key, msg string }{
		{"mode", "{mode: proxy}", "routes[0].redirect.mode", "follow or relay"},
		{"hops zero", "{max_hops: -1}", "routes[0].redirect.max_hops", "between 1 and 10"},
		{"hops many", "{max_hops: 11}", "routes[0].redirect.max_hops", "between 1 and 10"},
		{"diversion", "{diversion: pai}", "routes[0].redirect.diversion", "none, diversion or history-info"},
		{"allow", "{allow: [10.0.0.1]}", "routes[0].redirect.allow[0]", "not a CIDR"},
		{"deny", "{deny: [10.0.0.0/8, bogus]}", "routes[0].redirect.deny[1]", "not a CIDR"},
		{"unknown key", "{hops: 2}", "hops", "not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte(edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    redirect: "+c.redirect+"\n")))
			if err == nil || !strings.Contains(err.Error(), c.key) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err %v, want %s: %s", err, c.key, c.msg)
			}
			if c.name != "unknown key" && !errors.Is(err, config.ErrInvalid) {
				t.Errorf("err %v does not wrap ErrInvalid", err)
			}
		})
	}
}
