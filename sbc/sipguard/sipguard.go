// Package sipguard screens raw SIP datagrams before they reach the SIP
// stack. sipgo only logs a parse error, so every malformed request would
// vanish silently; Check decides per datagram whether to pass it on, answer
// it with a stateless error (StatelessResponse) or drop and count it.
//
// Everything here runs on hostile input for every packet: a single linear
// pass, bounded by Limits, no regexp, no allocation on the Check path, and
// no panics.
package sipguard

// Action says what the listener does with a datagram.
type Action int

const (
	// Accept hands the datagram to the SIP stack.
	Accept Action = iota
	// Reject answers with Verdict.Status statelessly, then drops it.
	Reject
	// Drop discards silently; the caller counts Verdict.Why.
	Drop
)

func (a Action) String() string {
	switch a {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case Drop:
		return "drop"
	}
	return "unknown"
}

// Verdict is the outcome of Check. The zero Verdict is Accept.
type Verdict struct {
	Action Action
	// Status is the response code for Reject, 0 otherwise.
	Status int
	// Reason is short human text for logs and the response reason phrase.
	Reason string
	// Why is a short snake_case cause, stable enough for a metric label.
	Why string
}

// Limits bound the work spent on one datagram. Zero fields take defaults.
type Limits struct {
	MaxMessage    int // bytes in the datagram, default 8192
	MaxHeaders    int // header fields, default 100
	MaxHeaderLine int // bytes in one line without its CRLF, default 2048
}

// Default limits, used for zero or negative Limits fields.
const (
	DefaultMaxMessage    = 8192
	DefaultMaxHeaders    = 100
	DefaultMaxHeaderLine = 2048
)

func (l Limits) withDefaults() Limits {
	if l.MaxMessage <= 0 {
		l.MaxMessage = DefaultMaxMessage
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	if l.MaxHeaderLine <= 0 {
		l.MaxHeaderLine = DefaultMaxHeaderLine
	}
	return l
}

// Header kinds that Check looks at; everything else is hOther.
const (
	hOther = iota
	hVia
	hFrom
	hTo
	hCallID
	hCSeq
	hMaxForwards
	hContentLength
	hContact
	hDate
	hContentType
	hRoute
	hRecordRoute
	hReferTo
	hReferredBy
	hCount
)

// Constant strings so that a Verdict never allocates.
var (
	headerNames = [hCount]string{"", "Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length",
		"Contact", "Date", "Content-Type", "Route", "Record-Route", "Refer-To", "Referred-By"}
	missingReason  = [hCount]string{"", "Missing Via", "Missing From", "Missing To", "Missing Call-ID", "Missing CSeq"}
	multipleReason = [hCount]string{hFrom: "Multiple From", hTo: "Multiple To", hCallID: "Multiple Call-ID", hCSeq: "Multiple CSeq", hMaxForwards: "Multiple Max-Forwards", hContentLength: "Multiple Content-Length"}
	singleValued   = [hCount]bool{hFrom: true, hTo: true, hCallID: true, hCSeq: true, hMaxForwards: true, hContentLength: true}
	mandatory      = [...]int{hVia, hFrom, hTo, hCallID, hCSeq}
)

// Check inspects one UDP datagram and says what to do with it.
func Check(msg []byte, lim Limits) Verdict {
	lim = lim.withDefaults()
	if len(msg) == 0 {
		return drop("garbage", "Empty datagram")
	}
	if len(msg) > lim.MaxMessage {
		return drop("too_large", "Message too large")
	}
	if onlyCRLF(msg) {
		return Verdict{} // keepalive
	}
	c := checker{msg: msg, lim: lim, clen: -1}
	return c.run()
}

func drop(why, reason string) Verdict {
	return Verdict{Action: Drop, Reason: reason, Why: why}
}

func onlyCRLF(b []byte) bool {
	for _, c := range b {
		if c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// checker holds the state of one Check pass. The first problem found wins;
// scanning goes on afterwards only to learn whether a Via exists, because
// without one a request cannot be answered.
type checker struct {
	msg     []byte
	lim     Limits
	request bool
	method  []byte
	first   Verdict // Action Accept until the first problem
	seen    [hCount]uint8
	clen    int // -1 when absent
}

func (c *checker) fail(status int, why, reason string) {
	if c.first.Action == Accept {
		c.first = Verdict{Action: Reject, Status: status, Reason: reason, Why: why}
	}
}

func (c *checker) ok() bool { return c.first.Action == Accept }

func (c *checker) run() Verdict {
	msg := c.msg
	nl := indexLF(msg, 0)
	if nl < 0 {
		// A start line with no end cannot carry a Via: nobody to answer.
		if m := tokenLen(msg, 0); m > 0 && m < len(msg) && msg[m] == ' ' || classify(msg) != kindGarbage {
			return drop("truncated", "Truncated start line")
		}
		return drop("garbage", "Not SIP")
	}
	line := trimCR(msg[:nl])
	switch classify(line) {
	case kindGarbage:
		return drop("garbage", "Not SIP")
	case kindRequest:
		c.request = true
		c.startRequest(line)
	case kindResponse:
		c.startResponse(line)
	}
	if len(line) > c.lim.MaxHeaderLine {
		c.fail(400, "line_too_long", "Start line too long")
	}

	bodyAt := c.headers(nl + 1)

	if c.request && c.seen[hVia] == 0 {
		return drop("missing_header", "Missing Via")
	}
	if c.ok() && bodyAt >= 0 && c.clen > len(msg)-bodyAt {
		c.fail(400, "bad_content_length", "Content-Length larger than body")
	}
	if c.ok() {
		for _, k := range mandatory {
			if c.seen[k] == 0 {
				c.fail(400, "missing_header", missingReason[k])
				break
			}
		}
	}
	v := c.first
	if v.Action == Reject && (!c.request || string(c.method) == "ACK") {
		// Responses and ACKs are never answered.
		v.Action, v.Status = Drop, 0
	}
	return v
}

func (c *checker) startRequest(line []byte) {
	m := tokenLen(line, 0)
	c.method = line[:m]
	rest := line[m+1:]
	sp := indexByte(rest, ' ')
	if sp <= 0 { // no version, or a second SP right after the method
		c.fail(400, "bad_start_line", "Malformed Request-Line")
		return
	}
	uri, ver := rest[:sp], rest[sp+1:]
	switch {
	case string(ver) == "SIP/2.0":
	case isSIPVersion(ver):
		c.fail(505, "bad_version", "Version Not Supported")
		return
	default: // extra or trailing SP, or no version at all
		c.fail(400, "bad_start_line", "Malformed Request-Line")
		return
	}
	if !validRequestURI(uri) {
		c.fail(400, "bad_start_line", "Bad Request-URI")
		return
	}
	// sipgo takes only letters in a scheme; RFC 4475 novelsc says 416 is
	// the answer for a scheme the element cannot handle.
	if !lettersOnly(uri[:schemeLen(uri)]) {
		c.fail(416, "unsupported_scheme", "Unsupported URI Scheme")
	}
}

func (c *checker) startResponse(line []byte) {
	const v = "SIP/2.0 "
	if len(line) < len(v) || string(line[:len(v)]) != v {
		c.fail(0, "bad_version", "Bad response version")
		return
	}
	s := line[len(v):]
	if len(s) < 4 || s[3] != ' ' || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[2]) || s[0] < '1' || s[0] > '6' {
		c.fail(0, "response_invalid", "Bad status code")
		return
	}
	for _, b := range s[4:] {
		if isCtl(b) && b != '\t' {
			c.fail(0, "response_invalid", "Bad reason phrase")
			return
		}
	}
}

// headers walks the header section and returns the body offset, or -1 if
// the section does not end properly. Past a size problem it only looks for
// Via: the request is bad already, but a Via lets us tell the sender.
func (c *checker) headers(pos int) int {
	s := scanner{msg: c.msg, pos: pos, maxLine: c.lim.MaxHeaderLine}
	n := 0
	for {
		name, value, st := s.next()
		switch st {
		case stEnd:
			return s.pos
		case stTruncated:
			c.fail(400, "truncated", "Header section not terminated")
			return -1
		case stBadLine:
			c.fail(400, "bad_header", "Malformed header line")
			continue
		case stTooLong:
			c.fail(400, "line_too_long", "Header line too long")
		}
		k := headerKind(name)
		if c.seen[k] < 255 {
			c.seen[k]++
		}
		if n++; n > c.lim.MaxHeaders {
			c.fail(400, "too_many_headers", "Too many headers")
		}
		if c.ok() && k != hOther {
			c.header(k, value)
		}
	}
}

func (c *checker) header(k int, v []byte) {
	if singleValued[k] && c.seen[k] > 1 {
		c.fail(400, "multiple_values", multipleReason[k])
		return
	}
	var why, reason string
	switch k {
	case hVia:
		why, reason = checkVia(v)
	case hFrom, hTo, hReferTo, hReferredBy:
		why, reason = checkAddrs(v, addrOne)
	case hContact:
		why, reason = checkAddrs(v, addrContact)
	case hRoute, hRecordRoute:
		why, reason = checkAddrs(v, addrRoute)
	case hContentType:
		// media-type = type "/" subtype *(";" param); sipgo wants it non-empty.
		t := trimLWS(v)
		n := tokenLen(t, 0)
		if n == 0 || n+1 >= len(t) || t[n] != '/' || tokenLen(t, n+1) == 0 {
			why, reason = "bad_content_type", "Bad Content-Type"
		}
	case hCallID:
		if !validCallID(trimLWS(v)) {
			why, reason = "bad_call_id", "Bad Call-ID"
		}
	case hCSeq:
		why, reason = c.checkCSeq(trimLWS(v))
	case hMaxForwards:
		if n, ok := parseUint(trimLWS(v), 255); !ok || n > 255 {
			why, reason = "bad_max_forwards", "Bad Max-Forwards"
		}
	case hContentLength:
		// Anything above MaxMessage cannot fit the datagram; the cap keeps
		// the conversion safe.
		d := trimLWS(v)
		n, ok := parseUint(d, uint64(c.lim.MaxMessage))
		switch {
		case ok:
			c.clen = int(n)
		case allDigits(d):
			c.clen = c.lim.MaxMessage + 1 // too big: fails the body check
		default:
			why, reason = "bad_content_length", "Bad Content-Length"
		}
	case hDate:
		// RFC 3261 20.17: SIP-date is always in GMT (RFC 4475 baddate).
		if d := trimLWS(v); len(d) < 4 || string(d[len(d)-4:]) != " GMT" {
			why, reason = "bad_date", "Bad Date"
		}
	}
	if why != "" {
		c.fail(400, why, reason)
	}
}

// checkCSeq wants "number LWS method", and the method must equal the request
// method. RFC 3261 8.1.1.5 says the number "MUST be less than 2**31"; sipgo
// refuses anything larger too, so that is the bound (RFC 4475 scalar02).
func (c *checker) checkCSeq(v []byte) (why, reason string) {
	i := 0
	for i < len(v) && isDigit(v[i]) {
		i++
	}
	if _, ok := parseUint(v[:i], 1<<31-1); !ok {
		return "bad_cseq", "Bad CSeq number"
	}
	j := skipLWS(v, i)
	if j == i {
		return "bad_cseq", "Bad CSeq"
	}
	m := v[j:]
	if len(m) == 0 || tokenLen(m, 0) != len(m) {
		return "bad_cseq", "Bad CSeq method"
	}
	if c.request && string(m) != string(c.method) { // mismatch01/02
		return "bad_cseq", "CSeq method mismatch"
	}
	return "", ""
}
