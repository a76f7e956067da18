package sipguard

// Field checkers. Each works on the raw value of one header (folds
// included), returns an empty why when the value is fine, and walks the
// value once.

import "net/netip"

// checkVia validates every via-parm of a Via value:
// "SIP" / "2.0" / transport LWS host [":" port] *(";" param).
func checkVia(v []byte) (why, reason string) {
	p := 0
	for {
		p = skipLWS(v, p)
		var ok bool
		if p, ok = sentProtocol(v, p); !ok {
			return "bad_via", "Bad Via protocol"
		}
		q := skipLWS(v, p)
		if q == p {
			return "bad_via", "Bad Via"
		}
		if p, ok = hostPort(v, q); !ok {
			return "bad_via", "Bad Via sent-by"
		}
		var branch []byte
		var found bool
		p, branch, found, ok = params(v, p, "branch")
		if !ok {
			return "bad_via", "Bad Via parameter"
		}
		// The bare magic cookie is no transaction id (RFC 4475 badbranch).
		if found && string(branch) == "z9hG4bK" {
			return "bad_branch", "Bad Via branch"
		}
		if p == len(v) {
			return "", ""
		}
		if v[p] != ',' {
			return "bad_via", "Bad Via"
		}
		p++
	}
}

// sentProtocol matches "SIP" / "2.0" / transport with LWS around slashes.
func sentProtocol(v []byte, p int) (int, bool) {
	if len(v)-p < 3 || !equalFold(v[p:p+3], "sip") {
		return p, false
	}
	p = skipLWS(v, p+3)
	if p >= len(v) || v[p] != '/' {
		return p, false
	}
	p = skipLWS(v, p+1)
	if len(v)-p < 3 || string(v[p:p+3]) != "2.0" {
		return p, false
	}
	p = skipLWS(v, p+3)
	if p >= len(v) || v[p] != '/' {
		return p, false
	}
	p = skipLWS(v, p+1)
	n := tokenLen(v, p)
	return p + n, n > 0
}

// hostPort matches a hostname, IPv4 or [IPv6] reference, and an optional port.
func hostPort(v []byte, p int) (int, bool) {
	start := p
	if p < len(v) && v[p] == '[' {
		p++
		for p < len(v) && (isHex(v[p]) || v[p] == ':' || v[p] == '.') {
			p++
		}
		if p == start+1 || p >= len(v) || v[p] != ']' {
			return p, false
		}
		// The characters alone let through what is no IPv6 address, like
		// RFC 5118 4.10's 2001:db8:::192.0.2.1 (three colons).
		if a, err := netip.ParseAddr(string(v[start+1 : p])); err != nil || !a.Is6() {
			return p, false
		}
		p++
	} else {
		for p < len(v) && hostChar[v[p]] {
			p++
		}
		if p == start {
			return p, false
		}
	}
	q := skipLWS(v, p)
	if q < len(v) && v[q] == ':' {
		q = skipLWS(v, q+1)
		d := q
		for q < len(v) && isDigit(v[q]) {
			q++
		}
		if _, ok := parseUint(v[d:q], 65535); !ok {
			return q, false
		}
		return q, true
	}
	return p, true
}

func isHex(c byte) bool { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'f' }

// params walks *(LWS ";" LWS name [LWS "=" LWS value]) and stops before the
// next non-LWS byte that is not ";". It reports the value of the parameter
// called want. Empty names and empty values are malformed (RFC 4475
// badinv01).
func params(v []byte, p int, want string) (end int, val []byte, found, ok bool) {
	for {
		p = skipLWS(v, p)
		if p >= len(v) || v[p] != ';' {
			return p, val, found, true
		}
		p = skipLWS(v, p+1)
		n := tokenLen(v, p)
		if n == 0 {
			return p, nil, false, false
		}
		name := v[p : p+n]
		p = skipLWS(v, p+n)
		var pv []byte
		if p < len(v) && v[p] == '=' {
			p = skipLWS(v, p+1)
			s := p
			if p < len(v) && v[p] == '"' {
				if p, ok = quoted(v, p); !ok {
					return p, nil, false, false
				}
			} else {
				for p < len(v) && (tokenChar[v[p]] || v[p] == '[' || v[p] == ']' || v[p] == ':') {
					p++
				}
			}
			if p == s {
				return p, nil, false, false
			}
			pv = v[s:p]
		}
		if !found && equalFold(name, want) {
			val, found = pv, true
		}
	}
}

// quoted returns the index after the quoted-string starting at v[p] == '"'.
// Backslash escapes any byte but CR and LF, NUL included (RFC 4475
// intmeth).
func quoted(v []byte, p int) (int, bool) {
	for p++; p < len(v); p++ {
		switch v[p] {
		case '\\':
			if p++; p < len(v) && (v[p] == '\r' || v[p] == '\n') {
				return p, false
			}
		case '"':
			return p + 1, true
		}
	}
	return len(v), false
}

// Address header shapes.
const (
	addrOne     = iota // From, To, Refer-To, Referred-By: exactly one
	addrContact        // "*" or a list
	addrRoute          // a list of name-addr (always in <>)
)

// checkAddrs validates the value of an address header of the given shape.
func checkAddrs(v []byte, shape int) (why, reason string) {
	if shape == addrContact && string(trimLWS(v)) == "*" {
		return "", ""
	}
	p := 0
	for {
		end, angle, _, why, reason := addr(v, p, "")
		if why != "" {
			return why, reason
		}
		if shape == addrRoute && !angle {
			return "bad_addr", "Route without <URI>"
		}
		if end == len(v) {
			return "", ""
		}
		if shape == addrOne { // end stopped at a comma
			return "multiple_values", "Multiple addresses"
		}
		p = end + 1
	}
}

// addr walks one (name-addr / addr-spec) *(";" param) and returns the index
// of the comma or end that follows, and whether parameter want is present.
func addr(v []byte, p int, want string) (end int, angle, found bool, why, reason string) {
	p = skipLWS(v, p)
	if p >= len(v) {
		return p, false, false, "bad_addr", "Empty address"
	}
	switch {
	case v[p] == '"':
		q, ok := quoted(v, p)
		if !ok {
			return q, false, false, "bad_addr", "Unbalanced quotes" // RFC 4475 quotbal
		}
		p = skipLWS(v, q)
		if p >= len(v) || v[p] != '<' {
			return p, false, false, "bad_addr", "Display name without <URI>"
		}
		angle = true
	default:
		// A display name of tokens, or a bare addr-spec; only "<" tells.
		q := p
		for q < len(v) && nameChar[v[q]] {
			q++
		}
		if q < len(v) && v[q] == '<' {
			p, angle = q, true
		}
	}
	if angle {
		e := indexByte(v[p+1:], '>')
		if e < 0 {
			return len(v), false, false, "bad_addr", "Unterminated <URI>"
		}
		u := v[p+1 : p+1+e]
		for _, c := range u {
			if isLWS(c) || c == '<' || c == '"' {
				return p, false, false, "bad_addr", "Spaces in addr-spec" // RFC 4475 badaspec
			}
		}
		if !validURI(u) {
			return p, false, false, "bad_addr", "Bad URI"
		}
		p += e + 2
	} else {
		// Bare addr-spec: its ";" start header params, so a URI that has
		// headers (or a comma) must have been in <> (RFC 3261 20.10,
		// RFC 4475 regbadct).
		s := p
		for p < len(v) && v[p] != ';' && v[p] != ',' && !isLWS(v[p]) {
			switch v[p] {
			case '?':
				return p, false, false, "bad_addr", "URI with headers not in <>"
			case '<', '>', '"':
				return p, false, false, "bad_addr", "Bad URI"
			}
			p++
		}
		if !validURI(v[s:p]) {
			return p, false, false, "bad_addr", "Bad URI" // also non-token display names (baddn)
		}
	}
	p, _, found, ok := params(v, p, want)
	if !ok {
		return p, false, false, "bad_addr", "Bad parameter"
	}
	if p < len(v) && v[p] != ',' {
		return p, false, false, "bad_addr", "Bad address"
	}
	return p, angle, found, "", ""
}

// validURI wants an absolute URI whose scheme is letters only (sipgo takes
// no other), and a sane host part for SIP and SIPS.
func validURI(u []byte) bool {
	if !absoluteURI(u) {
		return false
	}
	colon := schemeLen(u)
	if !lettersOnly(u[:colon]) {
		return false
	}
	return !isSIPScheme(u[:colon]) || validSIPURI(u[colon+1:])
}

func lettersOnly(b []byte) bool {
	for _, c := range b {
		if !isAlpha(c) {
			return false
		}
	}
	return true
}

// validCallID wants one non-empty word ["@" word]: visible ASCII, no LWS.
func validCallID(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
