package sbc

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
)

func TestContactTarget(t *testing.T) {
	cases := []struct {
		uri      string
		loopback bool
		want     string // "" = refused
	}{
		{"sip:2000@203.0.113.20", false, "203.0.113.20:5060;transport=udp"},
		{"sip:2000@203.0.113.20:5070;transport=TCP", false, "203.0.113.20:5070;transport=tcp"},
		{"sips:2000@203.0.113.20", false, "203.0.113.20:5061;transport=tls"},
		{"sip:2000@203.0.113.20;transport=tls", false, "203.0.113.20:5061;transport=tls"},
		{"sips:2000@203.0.113.20;transport=udp", false, "203.0.113.20:5061;transport=tls"}, // sips stays TLS
		{"sip:2000@[2001:db8::20]:5080", false, "[2001:db8::20]:5080;transport=udp"},
		{"sip:2000@10.1.2.3", false, "10.1.2.3:5060;transport=udp"},
		{"sip:2000@127.0.0.1:5090", true, "127.0.0.1:5090;transport=udp"},
		{"sip:2000@127.0.0.1:5090", false, ""}, // the SBC host's own services
		{"sip:2000@[::1]", false, ""},
		{"sip:2000@0.0.0.0", true, ""},
		{"sip:2000@224.0.0.1", false, ""},
		{"sip:2000@169.254.1.1", false, ""},
		{"sip:2000@255.255.255.255", false, ""},
		{"sip:2000@pbx.example.org", false, ""},
		{"sip:2000@203.0.113.20;transport=sctp", false, ""},
		{"tel:+4930123", false, ""},
	}
	for _, c := range cases {
		var u sip.Uri
		if err := sip.ParseUri(c.uri, &u); err != nil {
			if c.want != "" {
				t.Errorf("%s: %v", c.uri, err)
			}
			continue
		}
		got, ok := contactTarget(u, c.loopback)
		if c.want == "" {
			if ok {
				t.Errorf("%s (loopback realm %v): followed to %s, want refused", c.uri, c.loopback, got)
			}
			continue
		}
		if !ok || got.String() != c.want {
			t.Errorf("%s: %v %s, want %s", c.uri, ok, got.String(), c.want)
		}
	}
}

func TestChallengeStoreBoundsAndExpiry(t *testing.T) {
	var cs challengeStore
	now := time.Unix(1000, 0)
	k := challengeKey{"enterprise", "cid", "ft"}
	if !cs.put(k, challengedLeg{callID: "b"}, now) {
		t.Fatal("put refused")
	}
	if _, ok := cs.take(k, now.Add(challengeTTL+time.Second)); ok {
		t.Error("an expired challenge was resumed")
	}
	if _, ok := cs.take(k, now); ok {
		t.Error("a challenge was resumed twice")
	}
	for i := range maxChallenged {
		cs.put(challengeKey{"r", "c", string(rune(i))}, challengedLeg{}, now)
	}
	if cs.put(k, challengedLeg{}, now) {
		t.Error("a full store took one more")
	}
	if !cs.put(k, challengedLeg{}, now.Add(challengeTTL+time.Second)) {
		t.Error("a full store of expired entries refused a new one")
	}
	if len(cs.m) != 1 {
		t.Errorf("%d entries after expiry, want 1", len(cs.m))
	}
}

func TestRedirectOptsDefaults(t *testing.T) {
	o := newRedirectOpts(config.Redirect{Mode: "relay", MaxHops: 2, Diversion: "diversion", Deny: []string{"10.0.0.0/8"}})
	if !o.relay || o.maxHops != 2 || len(o.deny) != 1 || len(o.allow) != 0 {
		t.Errorf("%+v", o)
	}
	if got := diversionReason(302); got != "unconditional" {
		t.Errorf("302 reason %s", got)
	}
	if got := diversionReason(301); got != "unknown" {
		t.Errorf("301 reason %s", got)
	}
}

func TestConnectedNetwork(t *testing.T) {
	cidr := func(s string) net.Addr {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	addrs := []net.Addr{cidr("127.0.0.1/8"), cidr("203.0.113.1/24"), cidr("198.51.100.1/24"), cidr("2001:db8:2::1/64"),
		&net.IPAddr{IP: net.ParseIP("192.0.2.9")}}
	v4in6 := &net.IPNet{IP: net.ParseIP("192.0.2.1"), Mask: net.CIDRMask(120, 128)} // a 16-byte mask on an IPv4 address
	addrs = append(addrs, v4in6)
	for _, c := range []struct{ addr, want string }{
		{"198.51.100.1", "198.51.100.0/24"},
		{"203.0.113.1", "203.0.113.0/24"},
		{"2001:db8:2::1", "2001:db8:2::/64"},
		{"127.0.0.1", "127.0.0.0/8"},
		{"192.0.2.1", "192.0.2.0/24"},
		{"192.0.2.9", ""}, // not an IPNet
		{"198.51.100.2", ""},
	} {
		p, ok := connectedNetwork(netip.MustParseAddr(c.addr), addrs)
		got := ""
		if ok {
			got = p.String()
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.addr, got, c.want)
		}
	}
}

func TestSafeContactUser(t *testing.T) {
	for u, want := range map[string]bool{
		"2000": true, "+4930123": true, "alice.smith": true, "a-b_c!~*'()": true,
		"": false, "a;b": false, "a@b": false, "a%40b": false, "a b": false, "a>": false,
		"12345678901234567890123456789012345678901234567890123456789012345": false,
	} {
		if got := safeContactUser(u); got != want {
			t.Errorf("safeContactUser(%q) = %v, want %v", u, got, want)
		}
	}
}
