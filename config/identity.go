package config

import (
	"fmt"
	"strings"
)

// Identity headers (RFC 3325, 3323, 5806, 7044) and the realm keys that
// govern them. topology/identity.go rebuilds these headers on every
// crossing; no filter copies them raw.

// RPID modes: what the SBC does with a Remote-Party-ID arriving from a
// realm (a pre-RFC 3325 identity header some PBXs still send).
const (
	RPIDDrop    = "drop"    // removed (the default)
	RPIDConvert = "convert" // from a trusted realm, becomes P-Asserted-Identity
)

// IdentityHeaders are rebuilt by topology's identity rules on every
// crossing (their user part kept, their host the SBC's own) and never
// copied raw, whatever a realm's header list says.
var IdentityHeaders = map[string]bool{
	"p-asserted-identity": true, "p-preferred-identity": true,
	"remote-party-id": true, "diversion": true, "history-info": true,
}

// CapabilityHeaders are rebuilt on each leg from what the SBC itself
// supports there (sbc/capabilities.go); the far side's are never copied.
// Naming one in headers.list is a config error: it would never cross.
var CapabilityHeaders = map[string]bool{
	"supported": true, "k": true, "allow": true, "require": true,
}

// Trusted says whether the realm is in the SBC's trust domain (RFC 3325
// 2.3): identity it asserts is believed, and identity crosses into it. A
// realm with trust unset is trusted when its peers are configured targets
// (some route's to_realm, or some trunk's realm): the SBC chose them. A
// realm of phones, where anyone may send, is not.
func (c *Config) Trusted(realm string) bool {
	r := c.Realm(realm)
	if r == nil {
		return false
	}
	if r.Trust != nil {
		return *r.Trust
	}
	for _, rt := range c.Routes {
		if rt.ToRealm == realm {
			return true
		}
	}
	for _, t := range c.Trunks {
		if t.Realm == realm {
			return true
		}
	}
	return false
}

// AllowedHeaders is the realm's effective header list: in mode allow, the
// configured list added to DefaultAllowedHeaders unless replace is set;
// in mode deny, the list as given.
func (h HeaderPolicy) AllowedHeaders() []string {
	if h.Mode != "allow" || h.Replace {
		return h.List
	}
	out := append([]string(nil), DefaultAllowedHeaders...)
	seen := map[string]bool{}
	for _, n := range out {
		seen[strings.ToLower(n)] = true
	}
	for _, n := range h.List {
		if !seen[strings.ToLower(n)] {
			seen[strings.ToLower(n)] = true
			out = append(out, n)
		}
	}
	return out
}

// validateHeaderPolicy checks the traps of realms[].headers: an explicit
// allow with nothing in it, replace outside allow, and names that would
// never cross (rebuilt or protected headers).
// After defaults, an allow list is empty only when the config asked for it.
func validateHeaderPolicy(k string, h HeaderPolicy) error {
	if h.Mode == "allow" && len(h.List) == 0 {
		return keyErr(k+".list", "mode allow with an empty list would pass nothing; leave mode out for the defaults, list headers to add to them, or use mode deny")
	}
	if h.Replace && h.Mode != "allow" {
		return keyErr(k+".replace", "only mode allow has a default list to replace")
	}
	for j, n := range h.List {
		ln := strings.ToLower(n)
		switch {
		case CapabilityHeaders[ln]:
			return keyErr(fmt.Sprintf("%s.list[%d]", k, j), "%s is rebuilt by the SBC on each leg from what it supports there and never copied; remove it", n)
		case ProtectedHeaders[ln]:
			return keyErr(fmt.Sprintf("%s.list[%d]", k, j), "%s is the B2BUA's own and never copied; remove it", n)
		}
	}
	return nil
}

// validateIdentity checks realms[].rpid.
func (r *Realm) validateIdentity(k string) error {
	switch r.RPID {
	case RPIDDrop, RPIDConvert:
		return nil
	default:
		return keyErr(k+".rpid", "%q must be drop or convert", r.RPID)
	}
}
