package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgesbc/edgesbc/config"
)

func TestDiffNamesEachChangedKeyAndWhetherReloadAppliesIt(t *testing.T) {
	old := parse(t, baseYAML)
	cases := []struct {
		name, from, to string
		want           []config.Changed
	}{
		{"nothing", "", "", nil},
		{"route target", `targets: ["198.51.100.10:5060"]`, `targets: ["198.51.100.20:5060"]`,
			[]config.Changed{{Key: "routes[carrier-to-pbx].targets", Live: true}}},
		{"listen address", "listen: 203.0.113.1:5060", "listen: 203.0.113.2:5060",
			[]config.Changed{{Key: "realms[carrier].listen", Live: false}}},
		{"port range", "listen: 198.51.100.1:5060", "listen: 198.51.100.1:5060\n    media: {ports: 30000-30999}",
			[]config.Changed{{Key: "realms[enterprise].media.ports", Live: false}}},
		{"header rule", "listen: 198.51.100.1:5060", "listen: 198.51.100.1:5060\n    headers: {rules: [{action: add, header: X-Site, value: hq}]}",
			[]config.Changed{{Key: "realms[enterprise].headers.rules", Live: true}}},
		{"codecs", "listen: 198.51.100.1:5060", "listen: 198.51.100.1:5060\n    media: {codecs: [PCMA]}",
			[]config.Changed{{Key: "realms[enterprise].media.codecs", Live: true}}},
		{"state dir added", "routes:", "state_dir: /var/lib/edgesbc\nroutes:",
			[]config.Changed{{Key: "state_dir", Live: false}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			y := baseYAML
			if c.from != "" {
				y = edit(t, c.from, c.to)
			}
			next := parse(t, y)
			got := config.Diff(old, next)
			if len(got) != len(c.want) {
				t.Fatalf("Diff = %+v, want %+v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("Diff = %+v, want %+v", got, c.want)
				}
			}
		})
	}
}

func TestRestartNeededNamesTheFirstRestartOnlyKey(t *testing.T) {
	err := config.RestartNeeded([]config.Changed{{Key: "routes", Live: true}, {Key: "ha.peers", Live: false}})
	if err == nil || !strings.Contains(err.Error(), "ha.peers") || !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("RestartNeeded = %v, want an ErrInvalid naming ha.peers", err)
	}
	if err := config.RestartNeeded([]config.Changed{{Key: "routes", Live: true}}); err != nil {
		t.Fatalf("RestartNeeded(live only) = %v", err)
	}
}

func TestHashIsTheFilesSHA256(t *testing.T) {
	// sha256sum of the three bytes "abc".
	if got := config.Hash([]byte("abc")); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("Hash = %s", got)
	}
}

func parse(t *testing.T, y string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, y)
	}
	return c
}

// An HA pair whose peer moved, or whose routes changed besides: the peer
// is named and refused, the route change alone would have been live.
func TestDiffHAPeersNeedARestart(t *testing.T) {
	old := parse(t, baseYAML+haYAML)
	next := parse(t, strings.Replace(baseYAML+haYAML, "{id: b, addr: 192.0.2.3:7000}", "{id: b, addr: 192.0.2.5:7000}", 1))
	d := config.Diff(old, next)
	if len(d) != 1 || d[0].Key != "ha.peers[b].addr" || d[0].Live {
		t.Fatalf("Diff = %+v, want ha.peers[b].addr, restart-only", d)
	}
	if err := config.RestartNeeded(d); err == nil || !strings.Contains(err.Error(), "ha.peers[b].addr") {
		t.Fatalf("RestartNeeded = %v", err)
	}
}
