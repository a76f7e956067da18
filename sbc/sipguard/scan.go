package sipguard

import "bytes"

// Character classes from RFC 3261 25.1, as lookup tables for speed.
var (
	tokenChar  [256]bool // token
	lwsChar    [256]bool // SP, HTAB, CR, LF
	nameChar   [256]bool // token or LWS: an unquoted display name
	schemeChar [256]bool // ALPHA / DIGIT / "+" / "-" / "."
	hostChar   [256]bool // hostname, plus "_" which real networks use
)

func init() {
	for c := 'a'; c <= 'z'; c++ {
		tokenChar[c], tokenChar[c-32] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		tokenChar[c] = true
	}
	for _, c := range "-.!%*_+`'~" {
		tokenChar[c] = true
	}
	for c := range 256 {
		b := byte(c)
		schemeChar[c] = isAlpha(b) || isDigit(b) || b == '+' || b == '-' || b == '.'
		hostChar[c] = isAlpha(b) || isDigit(b) || b == '-' || b == '.' || b == '_'
		lwsChar[c] = b == ' ' || b == '\t' || b == '\r' || b == '\n'
		nameChar[c] = tokenChar[c] || lwsChar[c]
	}
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isCtl(c byte) bool   { return c < 0x20 || c == 0x7f }

// isLWS also takes CR and LF: inside a header value they only occur as
// part of a fold, which is linear whitespace.
func isLWS(c byte) bool { return lwsChar[c] }

func indexLF(b []byte, from int) int {
	i := bytes.IndexByte(b[from:], '\n')
	if i < 0 {
		return -1
	}
	return from + i
}

func indexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

func tokenLen(b []byte, from int) int {
	i := from
	for i < len(b) && tokenChar[b[i]] {
		i++
	}
	return i - from
}

func skipLWS(b []byte, i int) int {
	for i < len(b) && isLWS(b[i]) {
		i++
	}
	return i
}

func trimLWS(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isLWS(b[i]) {
		i++
	}
	for j > i && isLWS(b[j-1]) {
		j--
	}
	return b[i:j]
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if b[i]|0x20 != s[i]|0x20 {
			return false
		}
	}
	return true
}

// parseUint reads a decimal of one or more digits, failing above max.
func parseUint(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > max {
			return n, false
		}
	}
	return n, true
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return len(b) > 0
}

const (
	kindGarbage = iota
	kindRequest
	kindResponse
)

// classify tells whether a start line attempts to be SIP at all. Garbage is
// dropped without an answer; requests and responses are examined further.
func classify(line []byte) int {
	if len(line) >= 4 && string(line[:4]) == "SIP/" {
		for _, c := range line {
			if isCtl(c) && c != '\t' { // reason phrases may carry HTAB and UTF-8
				return kindGarbage
			}
		}
		return kindResponse
	}
	m := tokenLen(line, 0)
	if m == 0 || m >= len(line) || line[m] != ' ' {
		return kindGarbage
	}
	for _, c := range line {
		if c <= ' ' && c != ' ' || c >= 0x7f { // a request line is plain ASCII
			return kindGarbage
		}
	}
	if !bytes.Contains(line[m:], []byte(" SIP/")) {
		return kindGarbage // HTTP and friends, or no version at all
	}
	return kindRequest
}

// isSIPVersion matches "SIP/" 1*DIGIT "." 1*DIGIT.
func isSIPVersion(v []byte) bool {
	if len(v) < 7 || string(v[:4]) != "SIP/" {
		return false
	}
	v = v[4:]
	dot := indexByte(v, '.')
	if dot <= 0 || dot == len(v)-1 {
		return false
	}
	_, ok1 := parseUint(v[:dot], 1<<20)
	_, ok2 := parseUint(v[dot+1:], 1<<20)
	return ok1 && ok2
}

// validRequestURI checks an absolute URI without LWS or brackets; SIP and
// SIPS URIs must not carry headers (RFC 3261 19.1.5, RFC 4475 escruri).
func validRequestURI(u []byte) bool {
	if !absoluteURI(u) {
		return false
	}
	colon := schemeLen(u)
	for _, c := range u {
		if c == '<' || c == '>' || c == '"' {
			return false
		}
	}
	if isSIPScheme(u[:colon]) {
		return !hasURIHeaders(u) && validSIPURI(u[colon+1:])
	}
	return true
}

func isSIPScheme(s []byte) bool { return equalFold(s, "sip") || equalFold(s, "sips") }

// validSIPURI checks the part after "sip:": [userinfo "@"] host [":" port]
// then ";" params or "?" headers. The user part is opaque here; like sipgo,
// the first "@" ends it (an "@" elsewhere must be escaped).
func validSIPURI(u []byte) bool {
	p := indexByte(u, '@') + 1
	if p == len(u) {
		return false
	}
	end, ok := hostPort(u, p)
	if !ok {
		return false
	}
	return end == len(u) || u[end] == ';' || u[end] == '?'
}

// absoluteURI wants a scheme and something after its colon.
func absoluteURI(u []byte) bool {
	colon := schemeLen(u)
	return colon > 0 && colon < len(u)-1
}

// schemeLen returns the index of the colon ending a URI scheme, or -1.
func schemeLen(u []byte) int {
	if len(u) == 0 || !isAlpha(u[0]) {
		return -1
	}
	i := 1
	for i < len(u) && schemeChar[u[i]] {
		i++
	}
	if i < len(u) && u[i] == ':' {
		return i
	}
	return -1
}

// hasURIHeaders reports a "?" after the userinfo of a SIP URI. The user part
// may itself contain "?" (RFC 4475 intmeth), but never an unescaped "@".
func hasURIHeaders(u []byte) bool {
	at := indexByte(u, '@')
	return indexByte(u[at+1:], '?') >= 0
}

// Line scanner states.
const (
	stHeader    = iota // a header field, possibly folded
	stEnd              // the empty line; pos is the body offset
	stTruncated        // the header section never ends
	stTooLong          // a line over maxLine, skipped
	stBadLine          // not "name: value", or a bare CR; skipped
)

// scanner walks header lines. CRLF and bare LF both end a line; lines that
// start with SP or HTAB continue the previous field.
type scanner struct {
	msg     []byte
	pos     int
	maxLine int
}

// line returns the content end and the next line start of the line at p,
// and whether it is well formed (terminated, short enough, no bare CR).
func (s *scanner) line(p int) (end, next, st int) {
	nl := indexLF(s.msg, p)
	if nl < 0 {
		return len(s.msg), len(s.msg), stTruncated
	}
	end = nl
	if end > p && s.msg[end-1] == '\r' {
		end--
	}
	if bytes.IndexByte(s.msg[p:end], '\r') >= 0 {
		return end, nl + 1, stBadLine
	}
	if end-p > s.maxLine {
		return end, nl + 1, stTooLong
	}
	return end, nl + 1, stHeader
}

// next returns the next header field. A field with an over-long line still
// comes with its name (stTooLong), so that a long Via is known to exist.
func (s *scanner) next() (name, value []byte, st int) {
	p := s.pos
	if p >= len(s.msg) {
		return nil, nil, stTruncated
	}
	end, next, st := s.line(p)
	s.pos = next
	if st == stTruncated || st == stBadLine {
		return nil, nil, st
	}
	if end == p {
		return nil, nil, stEnd
	}
	n := tokenLen(s.msg[:end], p)
	i := p + n
	for i < end && (s.msg[i] == ' ' || s.msg[i] == '\t') {
		i++
	}
	if n == 0 || i == end || s.msg[i] != ':' {
		return nil, nil, stBadLine // also catches a continuation with no field
	}
	name = s.msg[p : p+n]
	vstart, vend := i+1, end
	for next < len(s.msg) && (s.msg[next] == ' ' || s.msg[next] == '\t') {
		end, nn, cst := s.line(next)
		s.pos = nn
		switch cst {
		case stTruncated, stBadLine:
			return nil, nil, cst
		case stTooLong:
			st = stTooLong
		}
		vend, next = end, nn
	}
	return name, s.msg[vstart:vend], st
}

// headerKind maps a field name, long or compact, to the kinds Check needs.
func headerKind(name []byte) int {
	if len(name) == 1 {
		switch name[0] | 0x20 {
		case 'v':
			return hVia
		case 'f':
			return hFrom
		case 't':
			return hTo
		case 'i':
			return hCallID
		case 'l':
			return hContentLength
		case 'm':
			return hContact
		case 'c':
			return hContentType
		case 'r':
			return hReferTo
		case 'b':
			return hReferredBy
		}
		return hOther
	}
	switch name[0] | 0x20 { // only names sharing the first letter can match
	case 'v':
		return kindIf(name, hVia)
	case 'f':
		return kindIf(name, hFrom)
	case 't':
		return kindIf(name, hTo)
	case 'm':
		return kindIf(name, hMaxForwards)
	case 'd':
		return kindIf(name, hDate)
	case 'c':
		for _, k := range [...]int{hCallID, hCSeq, hContentLength, hContact, hContentType} {
			if equalFold(name, headerNames[k]) {
				return k
			}
		}
	case 'r':
		for _, k := range [...]int{hRoute, hRecordRoute, hReferTo, hReferredBy} {
			if equalFold(name, headerNames[k]) {
				return k
			}
		}
	}
	return hOther
}

func kindIf(name []byte, k int) int {
	if equalFold(name, headerNames[k]) {
		return k
	}
	return hOther
}

// CanonicalName expands an RFC 3261 / registered compact header name to its
// full form; other names come back unchanged.
func CanonicalName(name string) string {
	if len(name) != 1 {
		return name
	}
	switch name[0] | 0x20 {
	case 'a':
		return "Accept-Contact"
	case 'b':
		return "Referred-By"
	case 'c':
		return "Content-Type"
	case 'd':
		return "Request-Disposition"
	case 'e':
		return "Content-Encoding"
	case 'f':
		return "From"
	case 'i':
		return "Call-ID"
	case 'j':
		return "Reject-Contact"
	case 'k':
		return "Supported"
	case 'l':
		return "Content-Length"
	case 'm':
		return "Contact"
	case 'o':
		return "Event"
	case 'r':
		return "Refer-To"
	case 's':
		return "Subject"
	case 't':
		return "To"
	case 'u':
		return "Allow-Events"
	case 'v':
		return "Via"
	case 'x':
		return "Session-Expires"
	case 'y':
		return "Identity"
	}
	return name
}
