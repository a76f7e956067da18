package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/config"
)

// baseYAML is a valid config that sets only what has no default. Bad-config
// cases are made from it by replacing one line.
const baseYAML = `realms:
  - name: carrier
    listen: 203.0.113.1:5060
    transports: [udp, tcp]
  - name: enterprise
    listen: 198.51.100.1:5060
routes:
  - name: carrier-to-pbx
    from_realm: carrier
    to_realm: enterprise
    targets: ["198.51.100.10:5060"]
  - name: pbx-to-carrier
    from_realm: enterprise
    to_realm: carrier
    targets: ["203.0.113.10:5060", "203.0.113.11:5061;transport=tcp"]
admin:
  listen: 127.0.0.1:8080
`

// edit returns baseYAML with old replaced by new exactly once; it fails the
// test if old is not there, so a case can never silently test the base.
func edit(t *testing.T, old, new string) string {
	t.Helper()
	if strings.Count(baseYAML, old) != 1 {
		t.Fatalf("edit: %q occurs %d times in baseYAML", old, strings.Count(baseYAML, old))
	}
	return strings.Replace(baseYAML, old, new, 1)
}

func TestParseBaseAppliesDefaults(t *testing.T) {
	c, err := config.Parse([]byte(baseYAML))
	if err != nil {
		t.Fatalf("Parse(base): %v", err)
	}
	if len(c.Realms) != 2 || len(c.Routes) != 2 {
		t.Fatalf("got %d realms, %d routes; want 2, 2", len(c.Realms), len(c.Routes))
	}
	car, ent := c.Realms[0], c.Realms[1]
	if car.Name != "carrier" || car.Listen != "203.0.113.1:5060" || !reflect.DeepEqual(car.Transports, []string{"udp", "tcp"}) {
		t.Errorf("carrier = %+v", car)
	}
	if ent.Name != "enterprise" || ent.Listen != "198.51.100.1:5060" {
		t.Errorf("enterprise = %+v", ent)
	}
	if !reflect.DeepEqual(ent.Transports, []string{"udp"}) {
		t.Errorf("enterprise transports = %v, want default [udp]", ent.Transports)
	}
	for _, r := range c.Realms {
		if r.UserAgent != "EdgeSBC" {
			t.Errorf("%s user_agent = %q, want EdgeSBC", r.Name, r.UserAgent)
		}
		if r.Headers.Mode != "allow" {
			t.Errorf("%s headers.mode = %q, want allow", r.Name, r.Headers.Mode)
		}
		if !reflect.DeepEqual(r.Headers.List, config.DefaultAllowedHeaders) {
			t.Errorf("%s headers.list = %v, want DefaultAllowedHeaders", r.Name, r.Headers.List)
		}
		if r.AdvertiseAddr() != strings.Split(r.Listen, ":")[0] {
			t.Errorf("%s AdvertiseAddr = %q, want listen IP", r.Name, r.AdvertiseAddr())
		}
		if r.ListenAddrPort().Port() != 5060 {
			t.Errorf("%s ListenAddrPort = %v", r.Name, r.ListenAddrPort())
		}
	}
	if !car.HasTransport("tcp") || ent.HasTransport("tcp") || !ent.HasTransport("udp") {
		t.Errorf("HasTransport wrong: carrier %v, enterprise %v", car.Transports, ent.Transports)
	}
	for _, rt := range c.Routes {
		if rt.TargetTimeout.Std() != 2*time.Second {
			t.Errorf("route %s target_timeout = %v, want 2s", rt.Name, rt.TargetTimeout.Std())
		}
		if rt.RingTimeout.Std() != 3*time.Minute || rt.Relay503As != 0 {
			t.Errorf("route %s ring_timeout = %v, relay_503_as = %d; want 3m, 0", rt.Name, rt.RingTimeout.Std(), rt.Relay503As)
		}
	}
	if got := c.Routes[1].Targets; !reflect.DeepEqual(got, []string{"203.0.113.10:5060", "203.0.113.11:5061;transport=tcp"}) {
		t.Errorf("route targets = %v", got)
	}
	if c.Admin.Listen != "127.0.0.1:8080" {
		t.Errorf("admin.listen = %q", c.Admin.Listen)
	}
	if c.SIP.UDPReadBuffer != 4<<20 {
		t.Errorf("sip.udp_read_buffer = %d, want %d", c.SIP.UDPReadBuffer, 4<<20)
	}
	if c.SIP.TransactionLinger.Std() != 32*time.Second {
		t.Errorf("sip.transaction_linger = %v, want 32s", c.SIP.TransactionLinger.Std())
	}
	if c.SIP.MaxMessage != 8192 {
		t.Errorf("sip.max_message = %d, want 8192", c.SIP.MaxMessage)
	}
	if c.Log.Level != "info" {
		t.Errorf("log.level = %q, want info", c.Log.Level)
	}
	if c.Realm("enterprise") != &c.Realms[1] || c.Realm("nope") != nil {
		t.Errorf("Realm lookup wrong")
	}
}

func TestParseDefaultsDoNotOverrideGivenValues(t *testing.T) {
	y := strings.Replace(baseYAML, "admin:\n  listen: 127.0.0.1:8080\n", `admin:
  listen: 127.0.0.1:9090
sip:
  udp_read_buffer: 1048576
  transaction_linger: 10s
  max_message: 4096
log:
  level: debug
`, 1)
	y = strings.Replace(y, "    listen: 198.51.100.1:5060\n", `    listen: 198.51.100.1:5060
    advertise: 192.0.2.50
    user_agent: PBX-Side
    headers:
      mode: deny
      list: [X-Secret, P-Asserted-Identity]
`, 1)
	y = strings.Replace(y, `    targets: ["198.51.100.10:5060"]`, `    targets: ["198.51.100.10:5060"]
    target_timeout: 500ms
    ring_timeout: 45s
    relay_503_as: 480`, 1)
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, y)
	}
	ent := c.Realms[1]
	if ent.AdvertiseAddr() != "192.0.2.50" || ent.UserAgent != "PBX-Side" {
		t.Errorf("enterprise advertise/user_agent = %q/%q", ent.AdvertiseAddr(), ent.UserAgent)
	}
	if ent.Headers.Mode != "deny" || !reflect.DeepEqual(ent.Headers.List, []string{"X-Secret", "P-Asserted-Identity"}) {
		t.Errorf("enterprise headers = %+v", ent.Headers)
	}
	if c.Routes[0].TargetTimeout.Std() != 500*time.Millisecond || c.Routes[1].TargetTimeout.Std() != 2*time.Second {
		t.Errorf("target timeouts = %v, %v", c.Routes[0].TargetTimeout.Std(), c.Routes[1].TargetTimeout.Std())
	}
	if c.Routes[0].RingTimeout.Std() != 45*time.Second || c.Routes[0].Relay503As != 480 || c.Routes[1].RingTimeout.Std() != 3*time.Minute {
		t.Errorf("ring timeouts %v, %v; relay_503_as %d", c.Routes[0].RingTimeout.Std(), c.Routes[1].RingTimeout.Std(), c.Routes[0].Relay503As)
	}
	if c.Admin.Listen != "127.0.0.1:9090" || c.SIP.UDPReadBuffer != 1<<20 ||
		c.SIP.TransactionLinger.Std() != 10*time.Second || c.SIP.MaxMessage != 4096 || c.Log.Level != "debug" {
		t.Errorf("given values overridden: admin %q sip %+v log %q", c.Admin.Listen, c.SIP, c.Log.Level)
	}
}

func TestParseInvalid(t *testing.T) {
	// Each case is baseYAML with one edit (or a whole document), and the
	// strings the error must contain: the key path and a word about why.
	type tc struct {
		name string
		yaml string
		want []string
	}
	cases := []tc{
		{"empty config", "", []string{"empty config"}},
		{"comments only", "# nothing here\n", []string{"empty config"}},
		{"no realms", "admin:\n  listen: 127.0.0.1:8080\n", []string{"realms", "at least one realm"}},
		{"empty realm list", "realms: []\n", []string{"realms", "at least one realm"}},
		{"unknown top-level key", baseYAML + "bogus_key: 1\n", []string{"bogus_key", "not found"}},
		{"unknown realm key", edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    listne: 1.2.3.4:5\n"), []string{"listne", "not found"}},
		{"unknown route key", edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    target: 1.2.3.4:5060\n"), []string{"target", "not found"}},
		{"unknown sip key", baseYAML + "sip:\n  udp_buffer: 1\n", []string{"udp_buffer", "not found"}},
		{"yaml syntax", "realms: [\n", []string{"yaml"}},
		{"listen not ip:port", edit(t, "listen: 203.0.113.1:5060", "listen: 203.0.113.1"), []string{"realms[0].listen", "not ip:port"}},
		{"listen hostname", edit(t, "listen: 203.0.113.1:5060", "listen: sbc.example.com:5060"), []string{"realms[0].listen", "not ip:port"}},
		{"listen port 0", edit(t, "listen: 198.51.100.1:5060", "listen: 198.51.100.1:0"), []string{"realms[1].listen", "port 0"}},
		{"listen wildcard v4", edit(t, "listen: 203.0.113.1:5060", "listen: 0.0.0.0:5060"), []string{"realms[0].listen", "wildcard"}},
		{"listen wildcard v6", edit(t, "listen: 203.0.113.1:5060", `listen: "[::]:5060"`), []string{"realms[0].listen", "wildcard"}},
		{"listen missing", edit(t, "    listen: 203.0.113.1:5060\n", ""), []string{"realms[0].listen", "not ip:port"}},
		{"duplicate listener", edit(t, "listen: 198.51.100.1:5060", "listen: 203.0.113.1:5060"), []string{"realms[1].listen", "already the listener of realms[0]"}},
		{"media address not an IP", edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    media: {address: pbx.example}\n"), []string{"realms[1].media.address", "not an IP"}},
		{"media ports not a range", edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    media: {ports: 20000}\n"), []string{"realms[1].media.ports", "not a port range"}},
		{"media ports reversed", edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    media: {ports: 30000-20000}\n"), []string{"realms[1].media.ports", "min < max"}},
		{"media ports privileged", edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    media: {ports: 100-2000}\n"), []string{"realms[1].media.ports", "1024"}},
		{"media ports overlap on one address", edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    media: {address: 203.0.113.1, ports: 29000-31000}\n"), []string{"realms[1].media.ports", "overlaps realms[0].media.ports"}},
		{"media codec not a name", edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    media: {codecs: [\"PCMU/8000\"]}\n"), []string{"realms[1].media.codecs[0]", "not a codec name"}},
		{"unknown media key", edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    media: {nat_window: 5s}\n"), []string{"nat_window", "not found"}},
		{"media timeout too short", baseYAML + "media: {timeout: 100ms}\n", []string{"media.timeout", "between"}},
		{"duplicate realm name", edit(t, "  - name: enterprise\n", "  - name: carrier\n"), []string{"realms[1].name", "defined twice"}},
		{"realm name upper case", edit(t, "  - name: enterprise\n", "  - name: Enterprise\n"), []string{"realms[1].name", "lower-case"}},
		{"realm name empty", edit(t, "  - name: enterprise\n", "  - name: \"\"\n"), []string{"realms[1].name", "lower-case"}},
		{"realm name too long", edit(t, "  - name: enterprise\n", "  - name: "+strings.Repeat("e", 33)+"\n"), []string{"realms[1].name", "max 32"}},
		{"realm name starts with digit", edit(t, "  - name: carrier\n", "  - name: 1carrier\n"), []string{"realms[0].name", "starting with a letter"}},
		{"unknown transport", edit(t, "transports: [udp, tcp]", "transports: [sctp]"), []string{"realms[0].transports[0]", "not a supported transport"}},
		{"upper-case transport", edit(t, "transports: [udp, tcp]", "transports: [udp, TCP]"), []string{"realms[0].transports[1]", "not a supported transport"}},
		{"duplicate transport", edit(t, "transports: [udp, tcp]", "transports: [udp, tcp, udp]"), []string{"realms[0].transports[2]", "listed twice"}},
		{"bad advertise", edit(t, "    listen: 203.0.113.1:5060\n", "    listen: 203.0.113.1:5060\n    advertise: sbc.example.com\n"), []string{"realms[0].advertise", "not an IP address"}},
		{"advertise with port", edit(t, "    listen: 203.0.113.1:5060\n", "    listen: 203.0.113.1:5060\n    advertise: 192.0.2.1:5060\n"), []string{"realms[0].advertise", "not an IP address"}},
		{"multiline user_agent", edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    user_agent: \"EdgeSBC\\r\\nX-Injected: 1\"\n"), []string{"realms[1].user_agent", "one line"}},
		{"long user_agent", edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    user_agent: "+strings.Repeat("a", 129)+"\n"), []string{"realms[1].user_agent", "128"}},
		{"bad headers mode", edit(t, "    listen: 203.0.113.1:5060\n", "    listen: 203.0.113.1:5060\n    headers:\n      mode: block\n"), []string{"realms[0].headers.mode", "allow or deny"}},
		{"bad header name", edit(t, "    listen: 203.0.113.1:5060\n", "    listen: 203.0.113.1:5060\n    headers:\n      list: [\"X Secret\", Subject]\n"), []string{"realms[0].headers.list[0]", "not a header name"}},
		{"header name with colon", edit(t, "    listen: 203.0.113.1:5060\n", "    listen: 203.0.113.1:5060\n    headers:\n      mode: deny\n      list: [Subject, \"X-Secret:\"]\n"), []string{"realms[0].headers.list[1]", "not a header name"}},
		{"empty header name", edit(t, "    listen: 203.0.113.1:5060\n", "    listen: 203.0.113.1:5060\n    headers:\n      list: [\"\"]\n"), []string{"realms[0].headers.list[0]", "not a header name"}},
		{"route without name", edit(t, "  - name: carrier-to-pbx\n", "  - name: \"\"\n"), []string{"routes[0].name", "needs a name"}},
		{"route to unknown realm", edit(t, "    to_realm: enterprise\n", "    to_realm: pbx\n"), []string{"routes[0].to_realm", "unknown realm", `"pbx"`}},
		{"route from unknown realm", edit(t, "    from_realm: carrier\n", "    from_realm: carriers\n"), []string{"routes[0].from_realm", "unknown realm", `"carriers"`}},
		{"route prefix and regex", edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    user_prefix: \"1\"\n    user_regex: \"^1\"\n"), []string{"routes[0]", "not both"}},
		{"route bad regex", edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    user_regex: \"^(1\"\n"), []string{"routes[0].user_regex", "missing closing )"}},
		{"route no targets", edit(t, `    targets: ["198.51.100.10:5060"]`, "    targets: []"), []string{"routes[0].targets", "at least one target"}},
		{"route targets missing", edit(t, "    targets: [\"198.51.100.10:5060\"]\n", ""), []string{"routes[0].targets", "at least one target"}},
		{"target hostname", edit(t, `"203.0.113.11:5061;transport=tcp"`, `"pbx.example.com:5060"`), []string{"routes[1].targets[1]", "not ip:port"}},
		{"target port 0", edit(t, `"198.51.100.10:5060"`, `"198.51.100.10:5060", "198.51.100.11:0"`), []string{"routes[0].targets[1]", "port 0"}},
		{"target no port", edit(t, `"198.51.100.10:5060"`, `"198.51.100.10"`), []string{"routes[0].targets[0]", "not ip:port"}},
		{"target bad transport", edit(t, `"198.51.100.10:5060"`, `"198.51.100.10:5060", "198.51.100.11:5060;transport=sctp"`), []string{"routes[0].targets[1]", "transport=udp, tcp or tls"}},
		{"target unknown param", edit(t, `"198.51.100.10:5060"`, `"198.51.100.10:5060", "198.51.100.11:5060;lr"`), []string{"routes[0].targets[1]", "transport=udp, tcp or tls"}},
		{"target timeout too short", edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    target_timeout: 50ms\n"), []string{"routes[0].target_timeout", "between 100ms and 60s"}},
		{"target timeout too long", edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    target_timeout: 61s\n"), []string{"routes[0].target_timeout", "between 100ms and 60s"}},
		{"target timeout negative", edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    target_timeout: -1s\n"), []string{"routes[0].target_timeout", "between 100ms and 60s"}},
		{"ring timeout too short", edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    ring_timeout: 50ms\n"), []string{"routes[0].ring_timeout", "between 100ms and 30m"}},
		{"ring timeout too long", edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    ring_timeout: 31m\n"), []string{"routes[0].ring_timeout", "between 100ms and 30m"}},
		{"ring timeout negative", edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    ring_timeout: -1s\n"), []string{"routes[0].ring_timeout", "between 100ms and 30m"}},
		{"relay_503_as not a failure", edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    relay_503_as: 200\n"), []string{"routes[0].relay_503_as", "not a failure status"}},
		{"relay_503_as too high", edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    relay_503_as: 700\n"), []string{"routes[0].relay_503_as", "not a failure status"}},
		{"target timeout not a duration", edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    target_timeout: 2 seconds\n"), []string{"not a duration", "line 11"}},
		{"admin listen bad", edit(t, "  listen: 127.0.0.1:8080\n", "  listen: localhost:8080\n"), []string{"admin.listen", "not ip:port"}},
		{"admin listen no port", edit(t, "  listen: 127.0.0.1:8080\n", "  listen: 127.0.0.1\n"), []string{"admin.listen", "not ip:port"}},
		{"udp_read_buffer too small", baseYAML + "sip:\n  udp_read_buffer: 65535\n", []string{"sip.udp_read_buffer", "between 65536 and 268435456"}},
		{"udp_read_buffer too big", baseYAML + "sip:\n  udp_read_buffer: 268435457\n", []string{"sip.udp_read_buffer", "between"}},
		{"udp_read_buffer negative", baseYAML + "sip:\n  udp_read_buffer: -1\n", []string{"sip.udp_read_buffer", "between"}},
		{"transaction_linger too short", baseYAML + "sip:\n  transaction_linger: 999ms\n", []string{"sip.transaction_linger", "between 1s and 60s"}},
		{"transaction_linger too long", baseYAML + "sip:\n  transaction_linger: 61s\n", []string{"sip.transaction_linger", "between 1s and 60s"}},
		{"max_message too small", baseYAML + "sip:\n  max_message: 1499\n", []string{"sip.max_message", "between 1500 and 65535"}},
		{"max_message too big", baseYAML + "sip:\n  max_message: 65536\n", []string{"sip.max_message", "between 1500 and 65535"}},
		{"log level", baseYAML + "log:\n  level: verbose\n", []string{"log.level", `"verbose"`, "debug, info, warn or error"}},
		{"log level upper case", baseYAML + "log:\n  level: INFO\n", []string{"log.level", "debug, info, warn or error"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(c.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want error containing %q\n%s", cfg, c.want, c.yaml)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with error %v", err)
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// The edges of every range are valid: a check off by one would reject them.
func TestParseRangeEdgesValid(t *testing.T) {
	for _, extra := range []string{
		"sip:\n  udp_read_buffer: 65536\n  transaction_linger: 1s\n  max_message: 1500\n",
		"sip:\n  udp_read_buffer: 268435456\n  transaction_linger: 60s\n  max_message: 65535\n",
		"log:\n  level: debug\n", "log:\n  level: warn\n", "log:\n  level: error\n",
	} {
		if _, err := config.Parse([]byte(baseYAML + extra)); err != nil {
			t.Errorf("Parse(base + %q): %v", extra, err)
		}
	}
	for _, d := range []string{"100ms", "60s"} {
		y := edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    target_timeout: "+d+"\n")
		if _, err := config.Parse([]byte(y)); err != nil {
			t.Errorf("target_timeout %s: %v", d, err)
		}
	}
	for _, v := range []string{"ring_timeout: 100ms", "ring_timeout: 30m", "relay_503_as: 400", "relay_503_as: 699"} {
		y := edit(t, "    to_realm: enterprise\n", "    to_realm: enterprise\n    "+v+"\n")
		if _, err := config.Parse([]byte(y)); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	// Same IP on two ports, and IPv6 listeners, are distinct listeners.
	// (With media anchored, two realms on one IP need their own port ranges.)
	y := edit(t, "listen: 198.51.100.1:5060", "listen: 203.0.113.1:5080\n    media: {ports: 30000-30999}")
	if _, err := config.Parse([]byte(y)); err != nil {
		t.Errorf("same IP, other port: %v", err)
	}
	y = edit(t, "listen: 198.51.100.1:5060", "listen: 203.0.113.1:5080")
	if _, err := config.Parse([]byte(y)); err == nil || !strings.Contains(err.Error(), "realms[1].media.ports") || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("two realms on one IP with the same media ports: %v", err)
	}
	y = edit(t, "listen: 198.51.100.1:5060", `listen: "[2001:db8::1]:5060"`)
	if _, err := config.Parse([]byte(y)); err != nil {
		t.Errorf("IPv6 listener: %v", err)
	}
}

func TestParseTarget(t *testing.T) {
	cases := []struct {
		in   string
		want config.Target
		str  string
	}{
		{"192.0.2.1:5060", config.Target{Host: "192.0.2.1", Port: 5060, Transport: "udp"}, "192.0.2.1:5060;transport=udp"},
		{"192.0.2.1:5080;transport=tcp", config.Target{Host: "192.0.2.1", Port: 5080, Transport: "tcp"}, "192.0.2.1:5080;transport=tcp"},
		{"192.0.2.1:65535;transport=udp", config.Target{Host: "192.0.2.1", Port: 65535, Transport: "udp"}, "192.0.2.1:65535;transport=udp"},
		{"[2001:db8::1]:5060", config.Target{Host: "2001:db8::1", Port: 5060, Transport: "udp"}, "[2001:db8::1]:5060;transport=udp"},
		{"[2001:db8::1]:5061;transport=tcp", config.Target{Host: "2001:db8::1", Port: 5061, Transport: "tcp"}, "[2001:db8::1]:5061;transport=tcp"},
		{"192.0.2.1:5061;transport=tls", config.Target{Host: "192.0.2.1", Port: 5061, Transport: "tls"}, "192.0.2.1:5061;transport=tls"},
	}
	for _, c := range cases {
		got, err := config.ParseTarget(c.in)
		if err != nil {
			t.Errorf("ParseTarget(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseTarget(%q) = %+v, want %+v", c.in, got, c.want)
		}
		if got.String() != c.str {
			t.Errorf("ParseTarget(%q).String() = %q, want %q", c.in, got.String(), c.str)
		}
	}
	for _, bad := range []string{
		"", "192.0.2.1", "pbx.example.com:5060", "192.0.2.1:0", "192.0.2.1:70000",
		"2001:db8::1:5060", "192.0.2.1:5060;transport=sctp", "192.0.2.1:5060;transport=",
		"192.0.2.1:5060;transport", "192.0.2.1:5060;lr", "192.0.2.1:5060;transport=tcp;lr",
		"sip:192.0.2.1:5060",
	} {
		if got, err := config.ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) = %+v, want error", bad, got)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "sbc.yaml")
	if err := os.WriteFile(good, []byte(baseYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(good)
	if err != nil {
		t.Fatalf("Load(%s): %v", good, err)
	}
	if len(c.Realms) != 2 || c.Realms[0].Name != "carrier" || c.Log.Level != "info" {
		t.Errorf("Load gave %+v", c)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(baseYAML, "to_realm: enterprise", "to_realm: nowhere", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = config.Load(bad)
	if err == nil || !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "routes[0].to_realm") {
		t.Errorf("Load(bad) error = %v, want ErrInvalid naming the file and routes[0].to_realm", err)
	}

	missing := filepath.Join(dir, "missing.yaml")
	_, err = config.Load(missing)
	if err == nil {
		t.Fatal("Load(missing) succeeded")
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error %v does not wrap os.ErrNotExist", err)
	}
	if errors.Is(err, config.ErrInvalid) {
		t.Errorf("Load(missing) error %v wraps ErrInvalid: a missing file is not an invalid config", err)
	}
	if !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) error %v does not name the file", err)
	}
}

func TestShippedConfigsLoad(t *testing.T) {
	for _, name := range []string{"default.yaml", "lab.yaml", "lab6.yaml", "lab46.yaml"} {
		t.Run(name, func(t *testing.T) {
			c, err := config.Load(filepath.Join("..", "configs", name))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Realm("carrier") == nil || c.Realm("enterprise") == nil {
				t.Errorf("realms = %+v, want carrier and enterprise", c.Realms)
			}
			if len(c.Routes) == 0 {
				t.Errorf("no routes")
			}
		})
	}
}
