package mediarelay

// SDP parsing and rewriting for media anchoring.
//
// The parser is a tolerant line-based one of our own: pion/sdp insists on the
// RFC 4566 line order and refuses real-world bodies (session c= after t=, for
// one), and every SDP crossing the SBC must be rewritten, not just the tidy
// ones. Lines are kept as text; only the lines the SBC must change are
// rebuilt, everything else goes out byte-for-byte in its original order.
//
// Decisions:
//   - c= lines are rewritten in place (session and media level) to the SBC
//     address; none are added or removed. Parsing already guarantees every
//     non-zero port stream has a media or session c=, so every active stream
//     ends up with an effective c= of Rewrite.Addr.
//   - c=0.0.0.0 (or ::) without ICE is RFC 2543 hold ("do not send to me").
//     ParseSDP reports it as a direction: sendrecv/sendonly become "sendonly",
//     recvonly/inactive become "inactive". RewriteSDP still writes Addr into
//     c= (so no foreign address leaks) and makes the hold explicit with a
//     media-level direction attribute (RFC 3264 section 8.4 style). With ICE
//     (any ICE attribute present) 0.0.0.0 is the ICE placeholder (RFC 8839),
//     not hold.
//   - The codec filter applies to RTP profiles only ("RTP/" in the proto);
//     other streams (T.38 udptl, data channels) pass through untouched.
//   - telephone-event, CN, RED, RTX and FEC are auxiliary: a stream is
//     rejected (port 0) when no primary codec survives, and RTX is dropped
//     when its apt= codec is. A dynamic PT without a=rtpmap has no name, so
//     it survives only when every codec is allowed.
//   - a=rtcp is dropped from port-0 streams and from the session level, so
//     no foreign address survives there; ICE attributes go everywhere.
//   - s= becomes "-", i= and k= go, and so does any other a= line that
//     holds an address (sdp_scrub.go).

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrBadSDP wraps every parse failure (the SIP side answers 400 or 488).
var ErrBadSDP = errors.New("bad SDP")

// ErrNoCodec: after the codec filter no stream is left with a codec (answer 488).
var ErrNoCodec = errors.New("no acceptable codec")

// Limits on hostile input.
const (
	maxBody   = 16 << 10 // bytes
	maxLine   = 1 << 10  // bytes, without the line end
	maxMedia  = 32       // m= lines
	maxAttrs  = 256      // a= lines per section (session or media)
	maxOToken = 64       // Rewrite.Username / Rewrite.SessID length
)

// Media is one m= line as parsed.
type Media struct {
	Kind      string            // "audio", "video", "application", ...
	Port      int               // 0 = rejected/disabled stream
	Proto     string            // "RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", ...
	Formats   []string          // payload types as on the m= line
	Addr      netip.Addr        // effective connection address (media c= or session c=); invalid if none
	RTCPPort  int               // from a=rtcp:PORT, else Port+1 (0 when Port is 0)
	RTCPMux   bool              // a=rtcp-mux present
	Direction string            // "sendrecv" (default), "sendonly", "recvonly", "inactive"; media-level overrides session-level; c=0.0.0.0 hold folded in
	Codecs    map[string]string // PT -> lower-case encoding name, from a=rtpmap or the static table
	Crypto    []string          // a=crypto values (SDES keys: never log them)
}

// Session is a parsed SDP.
type Session struct {
	OriginUser, OriginSessID string
	OriginVersion            uint64
	Media                    []Media
}

// Rewrite says how to rewrite an SDP for the leg it goes out on.
type Rewrite struct {
	Addr     netip.Addr // the SBC's media address on that leg (goes into o=, every c=)
	Ports    []int      // per m= line, the SBC's RTP port (0 rejects the stream); RTCP is Port+1
	Codecs   []string   // allowed encoding names, case-insensitive; nil/empty = all
	SessID   string     // o= session id the SBC uses on this leg
	Version  uint64     // o= session version for this SDP
	Username string     // o= username; empty means "-"
	// Per m= line (nil or shorter: nothing for that line): the transport
	// profile to write instead of the offered one ("" keeps it), and the
	// SBC's own a=crypto values to add. Incoming a=crypto lines (and other
	// keying attributes) never pass: each leg gets only the SBC's keys.
	Proto  []string
	Crypto [][]string
}

// sdpLine is one non-empty line: its type letter and the text after "=".
type sdpLine struct {
	typ byte
	val string
	num int // 1-based line number in the body, for errors
}

// mediaSec is one media section: its lines (m= first) and what was parsed.
type mediaSec struct {
	lines []sdpLine
	m     Media
	rtp   bool
	pts   []int          // numeric payload types parallel to m.Formats (RTP only)
	rates map[int]int    // clock rate per PT
	apt   map[int]int    // RTX PT -> the PT it repairs
	names map[int]string // encoding name per m= PT (rtpmap or static)
	hold  bool           // RFC 2543 hold: c=0.0.0.0 without ICE
}

// sdpDoc is the whole parsed body.
type sdpDoc struct {
	session []sdpLine
	media   []*mediaSec
	sess    Session
}

// badf builds an error wrapping ErrBadSDP.
func badf(num int, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if num > 0 {
		return fmt.Errorf("%w: line %d: %s", ErrBadSDP, num, msg)
	}
	return fmt.Errorf("%w: %s", ErrBadSDP, msg)
}

// clip quotes hostile text for an error message without echoing all of it.
func clip(s string) string {
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return strconv.Quote(s)
}

// ParseSDP parses a body (CRLF or LF line ends) in any line order.
func ParseSDP(b []byte) (*Session, error) {
	doc, err := parseDoc(b)
	if err != nil {
		return nil, err
	}
	return &doc.sess, nil
}

func parseDoc(b []byte) (*sdpDoc, error) {
	lines, err := splitLines(b)
	if err != nil {
		return nil, err
	}
	doc, err := sectionize(lines)
	if err != nil {
		return nil, err
	}
	sessAddr, sessDir, sessICE, err := parseSessionLines(doc)
	if err != nil {
		return nil, err
	}
	for _, ms := range doc.media {
		if err := parseMediaSec(ms, sessAddr, sessDir, sessICE); err != nil {
			return nil, err
		}
		doc.sess.Media = append(doc.sess.Media, ms.m)
	}
	return doc, nil
}

// splitLines checks the size limits and the "x=value" shape of every line.
func splitLines(b []byte) ([]sdpLine, error) {
	if len(b) > maxBody {
		return nil, badf(0, "body of %d bytes exceeds %d", len(b), maxBody)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, badf(0, "empty body")
	}
	var out []sdpLine
	for i, raw := range strings.Split(string(b), "\n") {
		s := strings.TrimSuffix(raw, "\r")
		if s == "" {
			continue // blank lines (often trailing) carry nothing
		}
		l, err := checkLine(s, i+1)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func checkLine(s string, num int) (sdpLine, error) {
	if len(s) > maxLine {
		return sdpLine{}, badf(num, "line of %d bytes exceeds %d", len(s), maxLine)
	}
	if len(s) < 2 || s[0] < 'a' || s[0] > 'z' || s[1] != '=' {
		return sdpLine{}, badf(num, "not a type=value line: %s", clip(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return sdpLine{}, badf(num, "control character 0x%02x", c)
		}
	}
	return sdpLine{typ: s[0], val: s[2:], num: num}, nil
}

// sectionize splits lines into the session part and media sections.
func sectionize(lines []sdpLine) (*sdpDoc, error) {
	if len(lines) == 0 || lines[0].typ != 'v' {
		return nil, badf(0, "body does not start with v=")
	}
	if strings.TrimSpace(lines[0].val) != "0" {
		return nil, badf(lines[0].num, "unsupported version v=%s", clip(lines[0].val))
	}
	doc := &sdpDoc{}
	attrs := 0
	for i, l := range lines {
		switch {
		case l.typ == 'v' && i > 0:
			return nil, badf(l.num, "second v= line")
		case l.typ == 'o' && len(doc.media) > 0:
			return nil, badf(l.num, "o= inside a media section")
		case l.typ == 'm':
			if len(doc.media) == maxMedia {
				return nil, badf(l.num, "more than %d m= lines", maxMedia)
			}
			doc.media = append(doc.media, &mediaSec{})
			attrs = 0
		case l.typ == 'a':
			if attrs++; attrs > maxAttrs {
				return nil, badf(l.num, "more than %d attributes in a section", maxAttrs)
			}
		}
		if n := len(doc.media); n > 0 {
			doc.media[n-1].lines = append(doc.media[n-1].lines, l)
		} else {
			doc.session = append(doc.session, l)
		}
	}
	return doc, nil
}

// parseSessionLines reads o=, the session c=, direction and ICE use.
func parseSessionLines(doc *sdpDoc) (addr netip.Addr, dir string, ice bool, err error) {
	seenO := false
	for _, l := range doc.session {
		switch l.typ {
		case 'o':
			if seenO {
				return addr, "", false, badf(l.num, "second o= line")
			}
			seenO = true
			if err = parseOrigin(l, &doc.sess); err != nil {
				return addr, "", false, err
			}
		case 'c':
			a, err := parseConn(l)
			if err != nil {
				return addr, "", false, err
			}
			if !addr.IsValid() {
				addr = a // several session c= is malformed; the first one rules
			}
		case 'a':
			name, _ := attr(l)
			if isDirection(name) {
				dir = name
			}
			ice = ice || isICE(name)
		}
	}
	if !seenO {
		return addr, "", false, badf(0, "missing o= line")
	}
	return addr, dir, ice, nil
}

// parseOrigin reads o=<user> <sess-id> <sess-version> <nettype> <addrtype> <addr>.
func parseOrigin(l sdpLine, s *Session) error {
	f := strings.Fields(l.val)
	if len(f) != 6 {
		return badf(l.num, "o= needs 6 fields, has %d", len(f))
	}
	v, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return badf(l.num, "o= session version %s is not a number", clip(f[2]))
	}
	s.OriginUser, s.OriginSessID, s.OriginVersion = f[0], f[1], v
	return nil
}

// parseConn reads c=IN IP4|IP6 <addr>[/ttl[/n]]; only IP literals are accepted
// because the relay must know where to send.
func parseConn(l sdpLine) (netip.Addr, error) {
	f := strings.Fields(l.val)
	if len(f) != 3 || !strings.EqualFold(f[0], "IN") {
		return netip.Addr{}, badf(l.num, "c= is not \"IN <addrtype> <addr>\": %s", clip(l.val))
	}
	host, _, _ := strings.Cut(f[2], "/")
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, badf(l.num, "c= address %s is not an IP address", clip(host))
	}
	switch {
	case strings.EqualFold(f[1], "IP4") && a.Is4():
	case strings.EqualFold(f[1], "IP6") && a.Is6():
	default:
		return netip.Addr{}, badf(l.num, "c= address type %s does not match %s", clip(f[1]), clip(host))
	}
	return a, nil
}

// attr splits an a= line into name and value.
func attr(l sdpLine) (name, value string) {
	name, value, _ = strings.Cut(l.val, ":")
	return name, value
}

func isDirection(name string) bool {
	switch name {
	case "sendrecv", "sendonly", "recvonly", "inactive":
		return true
	}
	return false
}

// isICE lists the ICE attributes the SBC strips: it terminates media itself.
func isICE(name string) bool {
	switch name {
	case "candidate", "remote-candidates", "ice-ufrag", "ice-pwd", "ice-options",
		"ice-lite", "ice-mismatch", "end-of-candidates":
		return true
	}
	return false
}

// mediaScan collects media-level facts while walking a section's lines.
type mediaScan struct {
	addr    netip.Addr // first media c=
	dir     string     // media-level direction attribute
	ice     bool       // ICE in use (session or media)
	hasRTCP bool       // a=rtcp seen
	names   map[int]string
}

// parseMediaSec fills ms.m from the section's lines.
func parseMediaSec(ms *mediaSec, sessAddr netip.Addr, sessDir string, sessICE bool) error {
	if err := parseMLine(ms, ms.lines[0]); err != nil {
		return err
	}
	ms.rates, ms.apt = map[int]int{}, map[int]int{}
	sc := mediaScan{ice: sessICE, names: map[int]string{}}
	for _, l := range ms.lines[1:] {
		switch l.typ {
		case 'c':
			a, err := parseConn(l)
			if err != nil {
				return err
			}
			if !sc.addr.IsValid() {
				sc.addr = a
			}
		case 'a':
			if err := parseMediaAttr(ms, l, &sc); err != nil {
				return err
			}
		}
	}
	return finishMedia(ms, &sc, sessAddr, sessDir)
}

// parseMediaAttr handles one media-level a= line.
func parseMediaAttr(ms *mediaSec, l sdpLine, sc *mediaScan) error {
	name, val := attr(l)
	switch {
	case isDirection(name):
		sc.dir = name
	case isICE(name):
		sc.ice = true
	case name == "rtcp-mux":
		ms.m.RTCPMux = true
	case name == "crypto":
		ms.m.Crypto = append(ms.m.Crypto, val)
	case name == "rtcp":
		p, err := parseRTCP(l, val)
		if err != nil {
			return err
		}
		if !sc.hasRTCP {
			ms.m.RTCPPort, sc.hasRTCP = p, true
		}
	case name == "rtpmap":
		if pt, enc, rate, ok := parseRtpmap(val); ok {
			sc.names[pt], ms.rates[pt] = enc, rate
		}
	case name == "fmtp":
		if pt, apt, ok := parseApt(val); ok {
			ms.apt[pt] = apt
		}
	}
	return nil
}

// finishMedia derives the effective address, RTCP port, direction and codecs.
func finishMedia(ms *mediaSec, sc *mediaScan, sessAddr netip.Addr, sessDir string) error {
	m := &ms.m
	m.Addr = sc.addr
	if !m.Addr.IsValid() {
		m.Addr = sessAddr
	}
	if m.Port != 0 && !m.Addr.IsValid() {
		return badf(ms.lines[0].num, "m=%s stream has no c= line and there is no session c=", clip(m.Kind))
	}
	switch {
	case m.Port == 0:
		m.RTCPPort = 0
	case !sc.hasRTCP && m.Port == 65535:
		return badf(ms.lines[0].num, "port 65535 leaves no room for RTCP")
	case !sc.hasRTCP:
		m.RTCPPort = m.Port + 1
	}
	m.Direction = firstNonEmpty(sc.dir, sessDir, "sendrecv")
	if m.Port != 0 && m.Addr.IsUnspecified() && !sc.ice {
		ms.hold = true
		m.Direction = holdDirection(m.Direction)
	}
	fillCodecs(ms, sc.names)
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// holdDirection folds RFC 2543 hold (peer will not receive) into a direction.
func holdDirection(dir string) string {
	if dir == "sendrecv" || dir == "sendonly" {
		return "sendonly"
	}
	return "inactive"
}

// staticPT is the RFC 3551 static payload type table we care about.
var staticPT = map[int]string{0: "pcmu", 3: "gsm", 4: "g723", 8: "pcma", 9: "g722", 18: "g729"}

// fillCodecs maps each m= format to its encoding name: rtpmap first, then
// the static table. RTP clock for all static ones (G.722 included) is 8000.
func fillCodecs(ms *mediaSec, rtpmap map[int]string) {
	ms.m.Codecs, ms.names = map[string]string{}, map[int]string{}
	for i, pt := range ms.pts {
		n, ok := rtpmap[pt]
		if !ok {
			if n, ok = staticPT[pt]; ok {
				ms.rates[pt] = 8000
			}
		}
		if ok {
			ms.m.Codecs[ms.m.Formats[i]], ms.names[pt] = n, n
		}
	}
}

// parseMLine reads m=<kind> <port> <proto> <fmt>...
func parseMLine(ms *mediaSec, l sdpLine) error {
	f := strings.Fields(l.val)
	if len(f) < 3 {
		return badf(l.num, "m= needs media, port and proto: %s", clip(l.val))
	}
	port, err := parsePort(f[1])
	if err != nil {
		return badf(l.num, "m= port: %v", err)
	}
	if port != 0 && len(f) < 4 {
		return badf(l.num, "m= has no formats")
	}
	ms.m.Kind, ms.m.Port, ms.m.Proto = f[0], port, f[2]
	ms.m.Formats = append([]string(nil), f[3:]...)
	ms.rtp = strings.Contains(strings.ToUpper(f[2]), "RTP/")
	if !ms.rtp {
		return nil
	}
	for _, s := range ms.m.Formats {
		pt, ok := parsePT(s)
		if !ok {
			return badf(l.num, "m= payload type %s is not 0-127", clip(s))
		}
		ms.pts = append(ms.pts, pt)
	}
	return nil
}

// parsePort accepts 0-65535; a "/count" port range is refused because the
// SBC allocates exactly one port pair per stream.
func parsePort(s string) (int, error) {
	if strings.Contains(s, "/") {
		return 0, fmt.Errorf("port ranges (%s) are not supported", clip(s))
	}
	n, ok := parseUint(s, 5)
	if !ok || n > 65535 {
		return 0, fmt.Errorf("%s is not a port number", clip(s))
	}
	return n, nil
}

func parsePT(s string) (int, bool) {
	n, ok := parseUint(s, 3)
	return n, ok && n <= 127
}

// parseUint reads up to maxDigits decimal digits, nothing else.
func parseUint(s string, maxDigits int) (int, bool) {
	if s == "" || len(s) > maxDigits {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// parseRTCP reads a=rtcp:<port> [IN IP4 <addr>]; the address is ignored
// because the rewrite drops it.
func parseRTCP(l sdpLine, val string) (int, error) {
	f := strings.Fields(val)
	if len(f) == 0 {
		return 0, badf(l.num, "a=rtcp without a port")
	}
	p, ok := parseUint(f[0], 5)
	if !ok || p == 0 || p > 65535 {
		return 0, badf(l.num, "a=rtcp port %s is not a port number", clip(f[0]))
	}
	return p, nil
}

// parseRtpmap reads "<pt> <enc>/<rate>[/<params>]". Malformed ones are
// ignored (the PT then counts as an unknown codec) rather than fatal.
func parseRtpmap(val string) (pt int, enc string, rate int, ok bool) {
	ptS, rest, _ := strings.Cut(val, " ")
	if pt, ok = parsePT(ptS); !ok {
		return 0, "", 0, false
	}
	f := strings.Split(strings.TrimSpace(rest), "/")
	if f[0] == "" {
		return 0, "", 0, false
	}
	if len(f) > 1 {
		rate, _ = parseUint(f[1], 9)
	}
	return pt, strings.ToLower(f[0]), rate, true
}

// parseApt finds apt=<pt> in an fmtp line (RTX, RFC 4588).
func parseApt(val string) (pt, apt int, ok bool) {
	ptS, params, _ := strings.Cut(val, " ")
	if pt, ok = parsePT(ptS); !ok {
		return 0, 0, false
	}
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "apt") {
			apt, ok = parsePT(strings.TrimSpace(v))
			return pt, apt, ok
		}
	}
	return 0, 0, false
}

// ptOf returns the PT an rtpmap/fmtp/rtcp-fb value refers to; ok is false for
// "*" or anything unparsable, which is then left alone.
func ptOf(val string) (int, bool) {
	s, _, _ := strings.Cut(val, " ")
	return parsePT(s)
}

// RewriteSDP returns the rewritten body, and the parsed original. The
// Session is returned whenever the body parsed, even if the rewrite failed
// (ErrNoCodec, bad Rewrite), so the caller can log what was offered.
func RewriteSDP(b []byte, rw Rewrite) ([]byte, *Session, error) {
	doc, err := parseDoc(b)
	if err != nil {
		return nil, nil, err
	}
	rw, err = checkRewrite(rw, doc)
	if err != nil {
		return nil, &doc.sess, err
	}
	plans, err := planMedia(doc, rw)
	if err != nil {
		return nil, &doc.sess, err
	}
	out, err := writeDoc(doc, rw, plans)
	if err != nil {
		return nil, &doc.sess, err
	}
	return out, &doc.sess, nil
}

// checkRewrite validates the caller's Rewrite; these are programming or
// config errors, so they do not wrap ErrBadSDP.
func checkRewrite(rw Rewrite, doc *sdpDoc) (Rewrite, error) {
	if !rw.Addr.IsValid() || rw.Addr.IsUnspecified() || rw.Addr.Zone() != "" {
		return rw, fmt.Errorf("mediarelay: Rewrite.Addr %v is not a usable media address", rw.Addr)
	}
	rw.Addr = rw.Addr.Unmap()
	if len(rw.Ports) != len(doc.media) {
		return rw, fmt.Errorf("mediarelay: Rewrite.Ports has %d entries for %d m= lines", len(rw.Ports), len(doc.media))
	}
	for i, ms := range doc.media {
		if p := rw.Ports[i]; ms.m.Port != 0 && (p < 0 || p > 65534) {
			return rw, fmt.Errorf("mediarelay: Rewrite.Ports[%d]=%d is not in 0-65534", i, p)
		}
	}
	if rw.Username == "" {
		rw.Username = "-"
	}
	if !isToken(rw.Username) || !isToken(rw.SessID) {
		return rw, fmt.Errorf("mediarelay: Rewrite.Username %q / SessID %q must be 1-%d printable non-space characters", rw.Username, rw.SessID, maxOToken)
	}
	return rw, nil
}

func isToken(s string) bool {
	if s == "" || len(s) > maxOToken {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// mediaPlan is what the rewrite does to one media section.
type mediaPlan struct {
	port    int
	formats []string
	drop    map[int]bool // m= PTs removed: their rtpmap/fmtp/rtcp-fb go too
	proto   string       // replaces the m= proto when set
	crypto  []string     // the SBC's a=crypto values for this line
}

// planMedia applies ports and the codec filter, and decides ErrNoCodec.
func planMedia(doc *sdpDoc, rw Rewrite) ([]mediaPlan, error) {
	allowed := map[string]bool{}
	for _, c := range rw.Codecs {
		if c = strings.ToLower(strings.TrimSpace(c)); c != "" {
			allowed[c] = true
		}
	}
	plans := make([]mediaPlan, len(doc.media))
	active, alive := 0, 0
	for i, ms := range doc.media {
		p := &plans[i]
		p.formats = ms.m.Formats
		if ms.m.Port == 0 {
			continue // already rejected: left alone
		}
		active++
		p.port = rw.Ports[i]
		if ms.rtp {
			planCodecs(p, ms, allowed)
		}
		if p.port != 0 {
			alive++
		}
	}
	if active > 0 && alive == 0 {
		return nil, fmt.Errorf("%w: all %d offered streams rejected (allowed %v)", ErrNoCodec, active, rw.Codecs)
	}
	return plans, nil
}

// planCodecs filters one RTP stream; with no primary codec left the stream
// is rejected RFC 3264 style: port 0, first original format kept.
func planCodecs(p *mediaPlan, ms *mediaSec, allowed map[string]bool) {
	keep := keptCodecs(ms, allowed)
	rejected := keep == nil
	if rejected {
		p.port = 0
		keep = map[int]bool{ms.pts[0]: true}
	}
	p.formats, p.drop = nil, map[int]bool{}
	for i, pt := range ms.pts {
		if keep[pt] {
			p.formats = append(p.formats, ms.m.Formats[i])
		} else {
			p.drop[pt] = true
		}
	}
	if rejected {
		p.formats = p.formats[:1] // first format listed more than once
	}
}

// auxCodec names encodings that cannot carry a stream on their own.
var auxCodec = map[string]bool{
	"telephone-event": true, "cn": true, "red": true, "rtx": true,
	"ulpfec": true, "flexfec": true, "flexfec-03": true,
}

// keptCodecs returns the surviving PTs, or nil if no primary codec is left.
// PTs are never renumbered.
func keptCodecs(ms *mediaSec, allowed map[string]bool) map[int]bool {
	keep, rates := map[int]bool{}, map[int]bool{}
	for _, pt := range ms.pts {
		name := ms.names[pt]
		if len(allowed) == 0 || allowed[name] {
			keep[pt] = true
			if !auxCodec[name] {
				rates[ms.rates[pt]] = true
			}
		}
	}
	if len(rates) == 0 {
		return nil
	}
	// Decided against primary codecs only, so the result is order-free.
	for _, pt := range ms.pts {
		switch ms.names[pt] {
		case "telephone-event": // DTMF needs a voice codec of the same clock
			keep[pt] = keep[pt] && ms.rates[pt] > 0 && rates[ms.rates[pt]]
		case "rtx": // repairs nothing once its codec is gone
			apt, ok := ms.apt[pt]
			keep[pt] = keep[pt] && ok && keep[apt] && !auxCodec[ms.names[apt]]
		}
	}
	return keep
}

// sdpWriter emits CRLF lines and enforces the parse limits on the output,
// so every body we produce parses again.
type sdpWriter struct {
	buf   bytes.Buffer
	attrs int
	err   error
}

func (w *sdpWriter) line(typ byte, val string) {
	if w.err != nil {
		return
	}
	if len(val)+2 > maxLine {
		w.err = badf(0, "rewritten %c= line exceeds %d bytes", typ, maxLine)
		return
	}
	if typ == 'a' {
		if w.attrs++; w.attrs > maxAttrs {
			w.err = badf(0, "rewritten section exceeds %d attributes", maxAttrs)
			return
		}
	}
	w.buf.WriteByte(typ)
	w.buf.WriteByte('=')
	w.buf.WriteString(val)
	w.buf.WriteString("\r\n")
	if w.buf.Len() > maxBody {
		w.err = badf(0, "rewritten body exceeds %d bytes", maxBody)
	}
}

func writeDoc(doc *sdpDoc, rw Rewrite, plans []mediaPlan) ([]byte, error) {
	w := &sdpWriter{}
	writeSession(w, doc.session, rw)
	for i, ms := range doc.media {
		w.attrs = 0
		p := plans[i]
		if i < len(rw.Proto) && rw.Proto[i] != "" {
			p.proto = rw.Proto[i]
		}
		if i < len(rw.Crypto) && p.port != 0 {
			p.crypto = rw.Crypto[i]
		}
		writeMedia(w, ms, p, rw)
	}
	if w.err != nil {
		return nil, w.err
	}
	return w.buf.Bytes(), nil
}

// connVal is the c=/o= address part for the SBC address.
func connVal(a netip.Addr) string {
	if a.Is4() {
		return "IN IP4 " + a.String()
	}
	return "IN IP6 " + a.String()
}

func writeSession(w *sdpWriter, lines []sdpLine, rw Rewrite) {
	for _, l := range lines {
		switch l.typ {
		case 'o':
			w.line('o', fmt.Sprintf("%s %s %d %s", rw.Username, rw.SessID, rw.Version, connVal(rw.Addr)))
		case 'c':
			w.line('c', connVal(rw.Addr))
		case 'a':
			// a=rtcp is media-level only (RFC 3605); at session level it
			// could only leak an address, so it goes too.
			if name, val := attr(l); !isICE(name) && name != "rtcp" && !isKeying(name) && !isIdentity(name) && !leaksAddress(name, val) {
				w.line('a', l.val)
			}
		case 'u', 'e', 'p': // URI, e-mail, phone of the origin: the other network's business
		default:
			writeScrubbed(w, l) // sdp_scrub.go: s=, i=, k=
		}
	}
}

func writeMedia(w *sdpWriter, ms *mediaSec, p mediaPlan, rw Rewrite) {
	m := ms.m
	proto := m.Proto
	if p.proto != "" {
		proto = p.proto
	}
	w.line('m', fmt.Sprintf("%s %d %s", m.Kind, p.port, strings.Join(append([]string{proto}, p.formats...), " ")))
	hold := ms.hold && p.port != 0
	wroteDir := false
	for _, l := range ms.lines[1:] {
		if l.typ == 'c' {
			w.line('c', connVal(rw.Addr))
			continue
		}
		if l.typ != 'a' {
			writeScrubbed(w, l) // sdp_scrub.go: i=, k=
			continue
		}
		name, val := attr(l)
		switch {
		case isICE(name), isKeying(name), isIdentity(name):
		case name == "rtcp":
			if p.port != 0 {
				w.line('a', "rtcp:"+strconv.Itoa(rtcpPort(p.port, m.RTCPMux)))
			}
		case (name == "rtpmap" || name == "fmtp" || name == "rtcp-fb") && !keptPT(p, val):
		case leaksAddress(name, val): // sdp_scrub.go
		case hold && isDirection(name):
			if !wroteDir {
				w.line('a', m.Direction) // the hold, made explicit
			}
			wroteDir = true
		default:
			w.line('a', l.val)
		}
	}
	if hold && !wroteDir {
		w.line('a', m.Direction)
	}
	for _, c := range p.crypto {
		w.line('a', "crypto:"+c)
	}
}

// isKeying lists attributes that carry or negotiate media keys: SDES
// (a=crypto), MIKEY (a=key-mgmt) and RFC 5939 capability negotiation,
// whose a=acap lines can hold a=crypto. They are one leg's business and
// never cross to the other; the SBC writes its own a=crypto per leg.
func isKeying(name string) bool {
	switch name {
	case "crypto", "key-mgmt", "acap", "tcap", "pcfg", "acfg", "csup", "creq":
		return true
	}
	return false
}

// isIdentity lists attributes that name the sender's endpoint: a=ssrc
// carries the RTCP CNAME, often user@host of the phone (a topology leak),
// and msid names WebRTC streams. The SBC anchors media, so the far leg
// learns SSRCs from the packets themselves.
func isIdentity(name string) bool {
	switch name {
	case "ssrc", "ssrc-group", "msid", "msid-semantic":
		return true
	}
	return false
}

// rtcpPort is where RTCP goes on the SBC side: the RTP port itself with
// rtcp-mux, else the next one.
func rtcpPort(port int, mux bool) int {
	if mux {
		return port
	}
	return port + 1
}

// keptPT says whether a PT-bearing attribute survives the codec filter;
// attributes of PTs never on the m= line, or of "*", are left alone.
func keptPT(p mediaPlan, val string) bool {
	pt, ok := ptOf(val)
	return !ok || !p.drop[pt]
}
