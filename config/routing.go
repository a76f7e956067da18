package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time rules name zones; do not depend on the host's zoneinfo
)

// Routing is the dial plan over trunks. Its rules are tried before the
// plain `routes:` (which keep working as before): by priority, lowest
// first, then in config order; the first rule that matches the call's
// realm, number and time wins.
type Routing struct {
	Rules []DialRule `yaml:"rules"`
}

// DialRule sends calls from a realm whose (E.164-normalized) called number
// matches a prefix or a regex, at the times given, to trunks.
type DialRule struct {
	Name      string `yaml:"name"`
	FromRealm string `yaml:"from_realm"`
	Prefix    string `yaml:"prefix"`
	Regex     string `yaml:"regex"`
	// Priority orders rules: lower first (default 100).
	Priority int `yaml:"priority"`
	// Time, when set, limits the rule to these windows (any of them).
	Time []TimeWindow `yaml:"time"`
	// Trunks are tried by priority (lower first); among equal priority in
	// a weighted random order. A trunk's down targets are skipped.
	Trunks []TrunkChoice `yaml:"trunks"`
}

// TrunkChoice is one trunk of a rule.
type TrunkChoice struct {
	Trunk    string `yaml:"trunk"`
	Priority int    `yaml:"priority"`
	// Weight among trunks of equal priority (default 1).
	Weight int `yaml:"weight"`
}

// TimeWindow is a daily time range on some weekdays in a time zone. From
// and To are "hh:mm"; To before From wraps past midnight (the night's
// second half belongs to the day it started on). Days empty means every
// day.
type TimeWindow struct {
	Days     []string `yaml:"days"`
	From     string   `yaml:"from"`
	To       string   `yaml:"to"`
	Timezone string   `yaml:"timezone"`
}

// HeaderRule changes messages sent into a realm (realms[].headers.rules),
// after the header policy. Action add appends Header: Value; remove drops
// every Header (only those whose value matches Match, when given); replace
// rewrites Match (a regex) in Header's value with Value ($1 expands).
// Methods, when set, limits the rule to requests of those methods and
// responses to them.
type HeaderRule struct {
	Action  string   `yaml:"action"`
	Header  string   `yaml:"header"`
	Value   string   `yaml:"value"`
	Match   string   `yaml:"match"`
	Methods []string `yaml:"methods"`
}

// ProtectedHeaders are the B2BUA's own (lower case; compact forms too):
// each names a host, a dialog, a hop or a credential of one side, so the
// SBC writes its own (or none). topology never copies them across, and
// header rules may not touch them. This is the one list of them.
var ProtectedHeaders = map[string]bool{
	"via": true, "v": true, "from": true, "f": true, "to": true, "t": true,
	"call-id": true, "i": true, "cseq": true, "contact": true, "m": true,
	"route": true, "record-route": true, "max-forwards": true,
	"content-length": true, "l": true, "content-type": true, "c": true,
	// realms[].user_agent writes these.
	"user-agent": true, "server": true,
	// The registrar's and PRACK's own.
	"path": true, "service-route": true, "rack": true, "rseq": true, "warning": true,
	// Digest credentials and challenges belong to one hop.
	"authorization": true, "proxy-authorization": true, "www-authenticate": true,
	"proxy-authenticate": true, "authentication-info": true,
	// The request's size on the wire, which sbc's read filter adds for its
	// guard (sbc/sipgo_rxlen.go): it must never cross.
	"x-edgesbc-rx-len": true,
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// Weekday parses mon..sun.
func Weekday(s string) (time.Weekday, bool) {
	d, ok := weekdays[strings.ToLower(s)]
	return d, ok
}

// ParseClock parses "hh:mm" (00:00-24:00) into minutes after midnight.
func ParseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || hh == 24 && mm != 0 {
		return 0, fmt.Errorf("%q is not a time of day hh:mm", s)
	}
	return hh*60 + mm, nil
}

func (c *Config) routingDefaults() {
	for i := range c.Routing.Rules {
		r := &c.Routing.Rules[i]
		if r.Priority == 0 {
			r.Priority = 100
		}
		for j := range r.Trunks {
			if r.Trunks[j].Weight == 0 {
				r.Trunks[j].Weight = 1
			}
		}
		for j := range r.Time {
			if r.Time[j].Timezone == "" {
				r.Time[j].Timezone = "UTC"
			}
		}
	}
}

func (c *Config) validateRouting(trunks map[string]bool) error {
	names := map[string]bool{}
	for i, r := range c.Routing.Rules {
		k := fmt.Sprintf("routing.rules[%d]", i)
		if r.Name == "" {
			return keyErr(k+".name", "a rule needs a name")
		}
		if names[r.Name] {
			return keyErr(k+".name", "rule %q is defined twice", r.Name)
		}
		names[r.Name] = true
		if c.Realm(r.FromRealm) == nil {
			return keyErr(k+".from_realm", "unknown realm %q", r.FromRealm)
		}
		if r.Prefix != "" && r.Regex != "" {
			return keyErr(k, "give prefix or regex, not both")
		}
		if !numberAffix(r.Prefix) {
			return keyErr(k+".prefix", "may hold only digits, +, *, # (max 16)")
		}
		if r.Regex != "" {
			if _, err := regexp.Compile(r.Regex); err != nil {
				return keyErr(k+".regex", "%v", err)
			}
		}
		if r.Priority < 0 || r.Priority > 1000 {
			return keyErr(k+".priority", "must be between 0 and 1000")
		}
		for j, w := range r.Time {
			wk := fmt.Sprintf("%s.time[%d]", k, j)
			for d, day := range w.Days {
				if _, ok := Weekday(day); !ok {
					return keyErr(fmt.Sprintf("%s.days[%d]", wk, d), "%q is not one of mon tue wed thu fri sat sun", day)
				}
			}
			if _, err := ParseClock(w.From); err != nil {
				return keyErr(wk+".from", "%v", err)
			}
			if _, err := ParseClock(w.To); err != nil {
				return keyErr(wk+".to", "%v", err)
			}
			if _, err := time.LoadLocation(w.Timezone); err != nil {
				return keyErr(wk+".timezone", "%v", err)
			}
		}
		if len(r.Trunks) == 0 {
			return keyErr(k+".trunks", "at least one trunk is required")
		}
		realm := ""
		for j, tc := range r.Trunks {
			tk := fmt.Sprintf("%s.trunks[%d]", k, j)
			if !trunks[tc.Trunk] {
				return keyErr(tk+".trunk", "unknown trunk %q", tc.Trunk)
			}
			// One call anchors its media in one pair of realms, so the
			// trunks it may fail over between share a realm.
			tr := c.Trunk(tc.Trunk).Realm
			if realm != "" && tr != realm {
				return keyErr(tk+".trunk", "trunk %q is in realm %q, the rule's other trunks in %q", tc.Trunk, tr, realm)
			}
			realm = tr
			if tc.Priority < 0 || tc.Priority > 1000 {
				return keyErr(tk+".priority", "must be between 0 and 1000")
			}
			if tc.Weight < 1 || tc.Weight > 1000 {
				return keyErr(tk+".weight", "must be between 1 and 1000")
			}
		}
	}
	for i, rc := range c.Realms {
		for j, hr := range rc.Headers.Rules {
			k := fmt.Sprintf("realms[%d].headers.rules[%d]", i, j)
			if !isToken(hr.Header) {
				return keyErr(k+".header", "%q is not a header name", hr.Header)
			}
			if ProtectedHeaders[strings.ToLower(hr.Header)] {
				return keyErr(k+".header", "%s is the B2BUA's own and cannot be changed by a rule", hr.Header)
			}
			if strings.ContainsAny(hr.Value, "\r\n") || len(hr.Value) > 512 {
				return keyErr(k+".value", "must be one line of at most 512 characters")
			}
			switch hr.Action {
			case "add":
				if hr.Value == "" || hr.Match != "" {
					return keyErr(k, "add needs a value and no match")
				}
			case "remove":
				if hr.Value != "" {
					return keyErr(k+".value", "remove takes no value")
				}
			case "replace":
				if hr.Match == "" {
					return keyErr(k+".match", "replace needs a regex to match")
				}
			default:
				return keyErr(k+".action", "%q must be add, remove or replace", hr.Action)
			}
			if hr.Match != "" {
				if _, err := regexp.Compile(hr.Match); err != nil {
					return keyErr(k+".match", "%v", err)
				}
			}
			for m, meth := range hr.Methods {
				if !isToken(meth) || strings.ToUpper(meth) != meth {
					return keyErr(fmt.Sprintf("%s.methods[%d]", k, m), "%q is not a SIP method like INVITE", meth)
				}
			}
		}
	}
	return nil
}
