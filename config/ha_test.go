package config_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/config"
)

const haYAML = `ha:
  node_id: a
  bind: 192.0.2.2:7000
  data_dir: /var/lib/edgesbc/ha
  peers:
    - {id: a, addr: 192.0.2.2:7000}
    - {id: b, addr: 192.0.2.3:7000}
    - {id: wit, addr: 192.0.2.4:7000}
  vips:
    - {realm: carrier, iface: ext0, address: 203.0.113.1/24}
    - {realm: enterprise, iface: int0, address: 198.51.100.1/24}
`

func TestParseHA(t *testing.T) {
	c, err := config.Parse([]byte(baseYAML + haYAML))
	if err != nil {
		t.Fatal(err)
	}
	h := c.HA
	if h == nil || h.NodeID != "a" || len(h.Peers) != 3 || len(h.VIPs) != 2 {
		t.Fatalf("ha = %+v", h)
	}
	if p := h.VIPs[0].Prefix(); p.String() != "203.0.113.1/24" || p.Addr().String() != "203.0.113.1" {
		t.Fatalf("vip prefix %s", p)
	}
	c, err = config.Parse([]byte(baseYAML + haYAML + "  heartbeat_timeout: 300ms\n  election_timeout: 400ms\n  leader_lease: 250ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.HA.HeartbeatTimeout.Std() != 300*time.Millisecond || c.HA.LeaderLease.Std() != 250*time.Millisecond {
		t.Fatalf("timing %+v", c.HA)
	}
	// IPv6 VIPs beside the IPv4 ones.
	v6 := strings.Replace(haYAML, "address: 198.51.100.1/24", "address: 2001:db8:2::1/64", 1)
	if c, err := config.Parse([]byte(baseYAML + v6)); err != nil || c.HA.VIPs[1].Prefix().String() != "2001:db8:2::1/64" {
		t.Fatalf("IPv6 VIP: %v", err)
	}
	if c, err := config.Parse([]byte(baseYAML)); err != nil || c.HA != nil {
		t.Fatalf("no ha section: %v %+v", err, c.HA)
	}
	// Single-node mode: no peers.
	if _, err := config.Parse([]byte(baseYAML + "ha: {node_id: solo, data_dir: /tmp/x}\n")); err != nil {
		t.Fatal(err)
	}
}

func TestParseHAInvalid(t *testing.T) {
	for _, tc := range []struct{ old, new, key string }{
		{"node_id: a", "node_id: ''", "ha.node_id"},
		{"node_id: a", "node_id: c", "ha.peers"},
		{"  data_dir: /var/lib/edgesbc/ha\n", "", "ha.data_dir"},
		{"bind: 192.0.2.2:7000", "bind: nowhere", "ha.bind"},
		{"    - {id: wit, addr: 192.0.2.4:7000}\n", "", "ha.peers"},
		{"{id: b, addr: 192.0.2.3:7000}", "{id: a, addr: 192.0.2.3:7000}", "ha.peers[1].id"},
		{"{id: b, addr: 192.0.2.3:7000}", "{id: b, addr: 192.0.2.2:7000}", "ha.peers[1].addr"},
		{"{id: b, addr: 192.0.2.3:7000}", "{id: b, addr: 0.0.0.0:7000}", "ha.peers[1].addr"},
		{"{id: b, addr: 192.0.2.3:7000}", "{id: 'b b', addr: 192.0.2.3:7000}", "ha.peers[1].id"},
		{"realm: carrier,", "realm: nope,", "ha.vips[0].realm"},
		{"iface: ext0", "iface: 'a very long interface name'", "ha.vips[0].iface"},
		{"address: 203.0.113.1/24", "address: 203.0.113.1", "ha.vips[0].address"},
		{"address: 203.0.113.1/24", "address: '::ffff:203.0.113.1/120'", "ha.vips[0].address"},
		{"address: 198.51.100.1/24", "address: 203.0.113.1/24", "ha.vips[1].address"},
		{"  vips:\n", "  heartbeat_timeout: 1ms\n  vips:\n", "ha.heartbeat_timeout"},
		{"  vips:\n", "  leader_lease: 400ms\n  vips:\n", "ha.leader_lease"},
		{"  vips:\n", "  election_timeout: 100ms\n  vips:\n", "ha.election_timeout"},
		{"  vips:\n", "  nonsense: 1\n  vips:\n", "nonsense"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if strings.Count(haYAML, tc.old) != 1 {
				t.Fatalf("%q occurs %d times", tc.old, strings.Count(haYAML, tc.old))
			}
			_, err := config.Parse([]byte(baseYAML + strings.Replace(haYAML, tc.old, tc.new, 1)))
			if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("want an error naming %s, got %v", tc.key, err)
			}
		})
	}
}

func TestParseWitness(t *testing.T) {
	c, err := config.LoadWitness(filepath.Join("..", "configs", "lab-ha-witness.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.HA.NodeID != "wit" || len(c.HA.Peers) != 3 || c.Admin.Listen != "127.0.0.1:8080" {
		t.Fatalf("witness config %+v", c.HA)
	}
	for _, tc := range []struct{ yaml, key string }{
		{"admin: {listen: 127.0.0.1:8080}\n", "ha"},
		{"ha: {node_id: wit, data_dir: /x}\n", "ha.peers"},
		{haYAML, "ha.vips"},
		{"ha: {node_id: w, data_dir: /x, peers: [{id: w, addr: 1.2.3.4:7}, {id: v, addr: 1.2.3.5:7}, {id: u, addr: 1.2.3.6:7}]}\nlog: {level: loud}\n", "log.level"},
		{"ha: {node_id: w, data_dir: /x, peers: [{id: w, addr: 1.2.3.4:7}, {id: v, addr: 1.2.3.5:7}, {id: u, addr: 1.2.3.6:7}]}\nbogus: 1\n", "bogus"},
	} {
		if _, err := config.ParseWitness([]byte(tc.yaml)); !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: want an error naming %s, got %v", tc.yaml, tc.key, err)
		}
	}
}
