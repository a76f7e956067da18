package sbc

// Message bodies other than a lone SDP (config.Bodies).
//
//   - application/sdp (or a body without Content-Type, which the SBC would
//     label SDP on the way out) goes through the media hook.
//   - multipart/mixed (SIP-I and SIP-T, RFC 3204: SDP + application/isup):
//     the SDP part goes through the media hook; an ISUP part crosses only
//     between realms that both say pass, is dropped otherwise, and an
//     INVITE from a realm with isup: refuse gets 415. Other parts: passed
//     when the arrival realm allows their type, dropped when marked
//     handling=optional, else refused. Nested multipart is refused (415),
//     a multipart without a boundary or that does not parse is 400. The
//     body leaves with a boundary of the SBC's own; with one part left it
//     leaves as that part alone.
//   - message/sipfrag (RFC 3420) keeps only its status or request line:
//     its headers (Via, Contact, ...) name the inside.
//   - Content-Encoding: gzip is decoded before any of this, bounded at
//     maxBodyDecoded (a larger result is 413), and the body leaves
//     unencoded; any other encoding is 415 with Accept-Encoding.
//   - Any other type on an INVITE: 415 with Accept, unless the arrival
//     realm allows it; on other requests (INFO's application/dtmf-relay)
//     it passes as it is. In responses a body the SBC cannot take is
//     dropped (the caller cannot be answered with a 415).

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
)

// Limits on hostile bodies.
const (
	maxBodyDecoded = 64 << 10 // bytes after Content-Encoding
	maxBodyParts   = 8
)

// bodyError is a body the SBC will not carry, with the SIP answer it gets.
type bodyError struct {
	code   int
	reason string
	accept string // Accept (415 for a type) or Accept-Encoding (415 for an encoding)
	isEnc  bool
	msg    string
}

func (e *bodyError) Error() string { return fmt.Sprintf("%d %s: %s", e.code, e.reason, e.msg) }

// headers are the extra headers of the refusal.
func (e *bodyError) headers() []sip.Header {
	if e.accept == "" {
		return nil
	}
	if e.isEnc {
		return []sip.Header{sip.NewHeader("Accept-Encoding", e.accept)}
	}
	return []sip.Header{sip.NewHeader("Accept", e.accept)}
}

func badBody(format string, a ...any) *bodyError {
	return &bodyError{code: sip.StatusBadRequest, reason: "Bad Request", msg: fmt.Sprintf(format, a...)}
}

// bodyRules is what applies to one body crossing from one realm to another.
type bodyRules struct {
	isupFrom, isupTo string
	allow            map[string]bool // arrival realm's extra types
	request          bool            // a request can be refused; a response's body is dropped
	passOther        bool            // not an INVITE: other types pass as they are (INFO's dtmf-relay)
}

func rulesFor(from, to *Realm, request bool) bodyRules {
	r := bodyRules{isupFrom: config.BodyDrop, isupTo: config.BodyDrop, request: request}
	if from != nil {
		r.isupFrom = from.cfg.Bodies.ISUPPolicy()
		for _, t := range from.cfg.Bodies.Allow {
			if r.allow == nil {
				r.allow = map[string]bool{}
			}
			r.allow[strings.ToLower(t)] = true
		}
	}
	if to != nil {
		r.isupTo = to.cfg.Bodies.ISUPPolicy()
	}
	return r
}

func (r bodyRules) unsupported(format string, a ...any) *bodyError {
	acc := []string{"application/sdp", "multipart/mixed"}
	if r.isupFrom == config.BodyPass {
		acc = append(acc, "application/isup")
	}
	for t := range r.allow {
		acc = append(acc, t)
	}
	return &bodyError{code: sip.StatusUnsupportedMediaType, reason: "Unsupported Media Type",
		accept: strings.Join(acc, ", "), msg: fmt.Sprintf(format, a...)}
}

// bodyPart is one part as it will leave.
type bodyPart struct {
	ctype, disposition string
	body               []byte
	sdp                bool
}

// crossBody turns the body of m, which arrived from realm from, into the
// body and Content-Type to send into realm to; the SDP, if any, goes
// through anchor. A nil body means none. Errors are *bodyError or the
// media hook's.
func crossBody(from, to *Realm, m sip.Message, anchor func([]byte) ([]byte, error)) ([]byte, string, error) {
	body := m.Body()
	if len(body) == 0 {
		return nil, "", nil
	}
	req, request := m.(*sip.Request)
	rules := rulesFor(from, to, request)
	rules.passOther = request && req.Method != sip.INVITE
	body, err := decodeBody(m, body)
	if err != nil {
		return nil, "", err
	}
	parts, err := rules.split(contentType(m), body, 0)
	if err != nil {
		return nil, "", err
	}
	for i := range parts {
		if parts[i].sdp {
			if parts[i].body, err = anchor(parts[i].body); err != nil {
				return nil, "", err
			}
		}
	}
	out, ct := joinParts(parts)
	return out, ct, nil
}

// decodeBody undoes Content-Encoding: gzip, bounded.
func decodeBody(m sip.Message, body []byte) ([]byte, error) {
	var enc string
	for _, h := range m.GetHeaders("Content-Encoding") {
		for _, v := range strings.Split(h.Value(), ",") {
			if v = strings.ToLower(strings.TrimSpace(v)); v != "" && v != "identity" {
				if enc != "" {
					return nil, &bodyError{code: sip.StatusUnsupportedMediaType, reason: "Unsupported Media Type", accept: "gzip", isEnc: true, msg: "more than one Content-Encoding"}
				}
				enc = v
			}
		}
	}
	switch enc {
	case "":
		return body, nil
	case "gzip", "x-gzip":
	default:
		return nil, &bodyError{code: sip.StatusUnsupportedMediaType, reason: "Unsupported Media Type", accept: "gzip", isEnc: true, msg: fmt.Sprintf("Content-Encoding %q", clipText(enc))}
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, badBody("gzip body: %v", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxBodyDecoded+1))
	if err != nil {
		return nil, badBody("gzip body: %v", err)
	}
	if len(out) > maxBodyDecoded {
		return nil, &bodyError{code: sip.StatusRequestEntityTooLarge, reason: "Request Entity Too Large", msg: fmt.Sprintf("gzip body decodes to more than %d bytes", maxBodyDecoded)}
	}
	return out, nil
}

// split reads a body of type ct into the parts that will leave. depth 1
// is inside a multipart.
func (r bodyRules) split(ct string, body []byte, depth int) ([]bodyPart, error) {
	if strings.TrimSpace(ct) == "" {
		ct = "application/sdp"
	}
	mt, params, err := parseType(ct)
	if err != nil {
		return nil, badBody("Content-Type %q: %v", clipText(ct), err)
	}
	switch {
	case mt == "application/sdp":
		return []bodyPart{{ctype: "application/sdp", body: body, sdp: true}}, nil
	case mt == "multipart/mixed" && depth == 0:
		return r.splitMultipart(params["boundary"], body)
	case strings.HasPrefix(mt, "multipart/"):
		return nil, r.unsupported("%s (nested or not mixed)", mt)
	case mt == "message/sipfrag":
		return []bodyPart{{ctype: "message/sipfrag", body: scrubSipfrag(body)}}, nil
	case r.allow[mt], r.passOther:
		return []bodyPart{{ctype: ct, body: body}}, nil
	case !r.request:
		return nil, nil // a response's body the SBC will not carry: dropped
	}
	return nil, r.unsupported("body type %s", mt)
}

func (r bodyRules) splitMultipart(boundary string, body []byte) ([]bodyPart, error) {
	if boundary == "" {
		return nil, badBody("multipart/mixed without a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var out []bodyPart
	sdps := 0
	for n := 0; ; n++ {
		p, err := mr.NextRawPart() // raw: no transfer decoding behind our back
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, badBody("multipart body: %v", err)
		}
		if n == maxBodyParts {
			return nil, badBody("multipart body with more than %d parts", maxBodyParts)
		}
		pb, err := io.ReadAll(p)
		if err != nil {
			return nil, badBody("multipart part %d: %v", n+1, err)
		}
		part, err := r.onePart(p.Header, pb)
		if err != nil {
			return nil, err
		}
		if part == nil {
			continue
		}
		if part.sdp {
			if sdps++; sdps > 1 {
				return nil, badBody("multipart body with more than one SDP")
			}
		}
		out = append(out, *part)
	}
	if len(out) == 0 && r.request {
		return nil, badBody("multipart body without a part to carry")
	}
	return out, nil
}

// onePart decides a multipart part's fate: nil drops it.
func (r bodyRules) onePart(h textproto.MIMEHeader, body []byte) (*bodyPart, error) {
	ct := h.Get("Content-Type")
	disp := h.Get("Content-Disposition")
	if enc := h.Get("Content-Transfer-Encoding"); enc != "" && !strings.EqualFold(enc, "binary") && !strings.EqualFold(enc, "8bit") && !strings.EqualFold(enc, "7bit") {
		return nil, r.unsupported("part with Content-Transfer-Encoding %q", clipText(enc))
	}
	mt, _, err := parseType(ct)
	if err != nil {
		return nil, badBody("part Content-Type %q: %v", clipText(ct), err)
	}
	if mt == "application/isup" {
		switch {
		case r.isupFrom == config.BodyRefuse && r.request:
			return nil, r.unsupported("ISUP refused on this realm")
		case r.isupFrom == config.BodyPass && r.isupTo == config.BodyPass:
			return &bodyPart{ctype: ct, disposition: disp, body: body}, nil
		}
		return nil, nil
	}
	parts, err := r.split(ct, body, 1)
	var be *bodyError
	if errors.As(err, &be) && be.code == sip.StatusUnsupportedMediaType && optional(disp) {
		return nil, nil // RFC 3204 handling=optional: the far end can do without it
	}
	if err != nil || len(parts) == 0 {
		return nil, err
	}
	parts[0].disposition = disp
	return &parts[0], nil
}

// parseType reads a media type; a broken parameter ("application/sdp;
// charset") costs the parameters, not the body, as before bodies.go.
func parseType(ct string) (string, map[string]string, error) {
	mt, params, err := mime.ParseMediaType(ct)
	if errors.Is(err, mime.ErrInvalidMediaParameter) && mt != "" {
		return mt, nil, nil
	}
	return mt, params, err
}

// optional: Content-Disposition says handling=optional (RFC 3204 3.2).
func optional(disp string) bool {
	_, params, err := mime.ParseMediaType(disp)
	return err == nil && strings.EqualFold(params["handling"], "optional")
}

// joinParts builds the outgoing body: one part alone, several as
// multipart/mixed with a fresh boundary.
func joinParts(parts []bodyPart) ([]byte, string) {
	switch len(parts) {
	case 0:
		return nil, ""
	case 1:
		return parts[0].body, parts[0].ctype
	}
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	boundary := "edgesbc-" + hex.EncodeToString(rnd[:])
	var b bytes.Buffer
	for _, p := range parts {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s\r\n", boundary, p.ctype)
		if p.disposition != "" {
			fmt.Fprintf(&b, "Content-Disposition: %s\r\n", p.disposition)
		}
		b.WriteString("\r\n")
		b.Write(p.body)
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes(), "multipart/mixed;boundary=" + boundary
}

// scrubSipfrag keeps a sipfrag's first line when it is a status or
// request line; its headers and body go.
func scrubSipfrag(b []byte) []byte {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimRight(line, "\r")
	if len(line) > 256 || !(bytes.HasPrefix(line, []byte("SIP/2.0 ")) || bytes.HasSuffix(line, []byte(" SIP/2.0"))) {
		return []byte("SIP/2.0 500 Server Internal Error\r\n") // not a sipfrag the SBC can vouch for
	}
	if !bytes.HasPrefix(line, []byte("SIP/2.0 ")) {
		// A request line names a URI of the far side: only the method survives.
		m, _, _ := bytes.Cut(line, []byte(" "))
		return append(m, " sip:anonymous@anonymous.invalid SIP/2.0\r\n"...)
	}
	return append(line, "\r\n"...)
}

// clipText quotes hostile text for an error without echoing all of it.
func clipText(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// isBodyError: err is crossBody's own refusal, not the media hook's.
func isBodyError(err error) bool {
	var be *bodyError
	return errors.As(err, &be)
}

// bodyRefusal is the answer for an INVITE whose body crossBody refused.
func bodyRefusal(err error) (int, string, []sip.Header) {
	var be *bodyError
	if errors.As(err, &be) {
		return be.code, be.reason, be.headers()
	}
	code, reason := mediaRefusal(err)
	return code, reason, nil
}

// offersSDP: an INVITE's or UPDATE's body that carries an SDP offer, alone
// or as a part of a multipart/mixed body (SIP-I re-INVITE).
func offersSDP(m sip.Message) bool {
	if isSDP(m) {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType(m))
	return err == nil && mt == "multipart/mixed" && bytes.Contains(bytes.ToLower(m.Body()), []byte("application/sdp"))
}

// asIs is the anchor for a body that is not an offer or answer: the SDP
// crosses unchanged, as it did before bodies.go.
func asIs(b []byte) ([]byte, error) { return b, nil }
