package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/config"
)

// trunkYAML is baseYAML plus two trunks, a dial plan and header rules.
const trunkYAML = baseYAML + `trunks:
  - name: carrier-a
    realm: carrier
    targets: ["203.0.113.10:5060", "sip.carrier.example;transport=tcp", "203.0.113.12"]
    credentials: {username: acct, password: s3cret}
    register: {enabled: true}
    options: {interval: 30s}
    normalize:
      outbound: [{strip_prefix: "+49", add_prefix: "0"}, {strip_prefix: "+", add_prefix: "00"}]
      inbound: [{strip_prefix: "00", add_prefix: "+"}, {strip_prefix: "0", add_prefix: "+49"}]
  - name: carrier-b
    realm: carrier
    targets: ["proxy.b.example:5070"]
routing:
  rules:
    - name: de
      from_realm: enterprise
      prefix: "+49"
      time: [{days: [mon, fri], from: "08:00", to: "18:00", timezone: Europe/Berlin}]
      trunks: [{trunk: carrier-a, weight: 3}, {trunk: carrier-b, priority: 1}]
    - name: rest
      from_realm: enterprise
      regex: '^\+[1-9]'
      priority: 10
      trunks: [{trunk: carrier-b}]
`

func editT(t *testing.T, old, new string) string {
	t.Helper()
	if strings.Count(trunkYAML, old) != 1 {
		t.Fatalf("edit: %q occurs %d times", old, strings.Count(trunkYAML, old))
	}
	return strings.Replace(trunkYAML, old, new, 1)
}

func TestTrunksParse(t *testing.T) {
	c, err := config.Parse([]byte(trunkYAML))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Trunk("carrier-a")
	if a == nil || a.Register.Expires != 3600 || a.Register.RetryMin.Std() != 5*time.Second || a.Register.RetryMax.Std() != 5*time.Minute ||
		a.Options.Interval.Std() != 30*time.Second || a.Options.DownAfter != 3 || a.Options.UpAfter != 2 || a.Options.Timeout.Std() != 2*time.Second ||
		a.TargetTimeout.Std() != 2*time.Second || a.Credentials.Secret() != "s3cret" {
		t.Fatalf("carrier-a defaults: %+v", a)
	}
	r := c.Routing.Rules
	if r[0].Priority != 100 || r[0].Trunks[0].Weight != 3 || r[0].Trunks[1].Weight != 1 || r[1].Priority != 10 || r[0].Time[0].Timezone != "Europe/Berlin" {
		t.Fatalf("rules: %+v", r)
	}
	tt, err := config.ParseTrunkTarget("sip.carrier.example;transport=tcp")
	if err != nil || tt.Port != 0 || tt.IsIP || tt.Transport != "tcp" {
		t.Fatalf("target %+v %v", tt, err)
	}
	tt, err = config.ParseTrunkTarget("203.0.113.10;transport=tls")
	if err != nil || tt.Port != 5061 || !tt.IsIP || tt.Transport != "tls" {
		t.Fatalf("TLS target %+v %v (want port 5061)", tt, err)
	}
}

func TestTrunksPasswordFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte("from-file\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse([]byte(editT(t, "password: s3cret", "password_file: "+p)))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Trunk("carrier-a").Credentials.Secret(); got != "from-file" {
		t.Fatalf("password %q", got)
	}
}

func TestTrunksInvalid(t *testing.T) {
	cases := []struct{ old, new, key string }{
		{"name: carrier-a", "name: Carrier A", "trunks[0].name"},
		{"name: carrier-b", "name: carrier-a", "trunks[1].name"},
		{"realm: carrier\n    targets: [\"203.0.113.10:5060\", \"sip", "realm: nope\n    targets: [\"203.0.113.10:5060\", \"sip", "trunks[0].realm"},
		{`targets: ["proxy.b.example:5070"]`, `targets: []`, "trunks[1].targets"},
		{`targets: ["proxy.b.example:5070"]`, `targets: ["proxy.b.example:99999"]`, "trunks[1].targets[0]"},
		{`targets: ["proxy.b.example:5070"]`, `targets: ["bad host!"]`, "trunks[1].targets[0]"},
		{`targets: ["proxy.b.example:5070"]`, `targets: ["203.0.113.1:5060;transport=sctp"]`, "trunks[1].targets[0]"},
		{"credentials: {username: acct, password: s3cret}", "credentials: {username: acct}", "trunks[0].credentials.password"},
		{"credentials: {username: acct, password: s3cret}", "credentials: {password: x}", "trunks[0].credentials.username"},
		{"credentials: {username: acct, password: s3cret}", "credentials: {username: acct, password: x, password_file: /nonexistent}", "trunks[0].credentials"},
		{"credentials: {username: acct, password: s3cret}", "credentials: {username: acct, password_file: /nonexistent/pw}", "trunks[0].credentials.password_file"},
		{"credentials: {username: acct, password: s3cret}", "credentials: {username: acct, password: x, nonce: y}", "field nonce not found"},
		{"register: {enabled: true}", "register: {enabled: true, expires: 10}", "trunks[0].register.expires"},
		{"register: {enabled: true}", "register: {enabled: true, retry_min: 10s, retry_max: 1s}", "trunks[0].register.retry_min"},
		{"options: {interval: 30s}", "options: {interval: 1ms}", "trunks[0].options.interval"},
		{"options: {interval: 30s}", "options: {interval: 30s, down_after: 1000}", "trunks[0].options.down_after"},
		{`{strip_prefix: "+49", add_prefix: "0"}`, `{strip_prefix: "+49", add_prefix: "0x"}`, "trunks[0].normalize.outbound[0]"},
		{"      prefix: \"+49\"\n", "      prefix: \"+49\"\n      regex: x\n", "routing.rules[0]"},
		{`regex: '^\+[1-9]'`, `regex: '('`, "routing.rules[1].regex"},
		{"- name: rest", "- name: de", "routing.rules[1].name"},
		{"from_realm: enterprise\n      prefix", "from_realm: pbx\n      prefix", "routing.rules[0].from_realm"},
		{"trunks: [{trunk: carrier-b}]", "trunks: [{trunk: carrier-z}]", "routing.rules[1].trunks[0].trunk"},
		{"trunks: [{trunk: carrier-b}]", "trunks: []", "routing.rules[1].trunks"},
		{"trunks: [{trunk: carrier-b}]", "trunks: [{trunk: carrier-b, weight: 5000}]", "routing.rules[1].trunks[0].weight"},
		{"days: [mon, fri]", "days: [mon, funday]", "routing.rules[0].time[0].days[1]"},
		{`from: "08:00"`, `from: "8:00"`, "routing.rules[0].time[0].from"},
		{`to: "18:00"`, `to: "24:30"`, "routing.rules[0].time[0].to"},
		{"timezone: Europe/Berlin", "timezone: Mars/Olympus", "routing.rules[0].time[0].timezone"},
	}
	for _, c := range cases {
		_, err := config.Parse([]byte(editT(t, c.old, c.new)))
		if err == nil || !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%q -> %q: err %v, want one naming %s", c.old, c.new, err, c.key)
		}
	}
	// A rule's trunks must share a realm.
	y := strings.Replace(trunkYAML, "    realm: carrier\n    targets: [\"proxy", "    realm: enterprise\n    targets: [\"proxy", 1)
	if _, err := config.Parse([]byte(y)); err == nil || !strings.Contains(err.Error(), "routing.rules[0].trunks[1].trunk") {
		t.Errorf("mixed realms: %v", err)
	}
}

func TestHeaderRulesConfig(t *testing.T) {
	ok := strings.Replace(baseYAML, "    transports: [udp, tcp]\n", `    transports: [udp, tcp]
    headers:
      rules:
        - {action: add, header: X-Trunk, value: a}
        - {action: remove, header: X-Internal, match: "^secret"}
        - {action: replace, header: P-Asserted-Identity, match: "@[^>]+", value: "@sbc.example", methods: [INVITE]}
`, 1)
	c, err := config.Parse([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Realms[0].Headers.Rules); n != 3 || c.Realms[0].Headers.Mode != "allow" {
		t.Fatalf("rules %d mode %q", n, c.Realms[0].Headers.Mode)
	}
	bad := []struct{ rule, key string }{
		{"{action: add, header: Via, value: x}", "realms[0].headers.rules[0].header"},
		{"{action: remove, header: call-id}", "realms[0].headers.rules[0].header"},
		{"{action: add, header: X-A}", "realms[0].headers.rules[0]"},
		{"{action: replace, header: X-A, value: b}", "realms[0].headers.rules[0].match"},
		{"{action: replace, header: X-A, match: '(', value: b}", "realms[0].headers.rules[0].match"},
		{"{action: drop, header: X-A}", "realms[0].headers.rules[0].action"},
		{"{action: add, header: 'X A', value: b}", "realms[0].headers.rules[0].header"},
		{"{action: add, header: X-A, value: b, methods: [invite]}", "realms[0].headers.rules[0].methods[0]"},
		{"{action: remove, header: X-A, value: b}", "realms[0].headers.rules[0].value"},
	}
	for _, b := range bad {
		y := strings.Replace(baseYAML, "    transports: [udp, tcp]\n", "    transports: [udp, tcp]\n    headers:\n      rules:\n        - "+b.rule+"\n", 1)
		_, err := config.Parse([]byte(y))
		if err == nil || !strings.Contains(err.Error(), b.key) {
			t.Errorf("%s: err %v, want one naming %s", b.rule, err, b.key)
		}
	}
}

func TestTrunkExampleConfigLoads(t *testing.T) {
	c, err := config.Load(filepath.Join("..", "configs", "lab-trunks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Trunk("carrier") == nil || len(c.Routing.Rules) != 1 || len(c.Realms[0].Headers.Rules) != 1 {
		t.Fatalf("lab-trunks.yaml: %+v", c)
	}
}
