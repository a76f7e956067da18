package sipguard

import (
	"hash/fnv"
	"strconv"
)

// maxReason caps the reason phrase so the answer stays small.
const maxReason = 64

// StatelessResponse builds "SIP/2.0 <status> <reason>" for the raw request
// msg, copying every Via (in order), From, To, Call-ID and CSeq, and adding
// Content-Length: 0. Vias are copied even when malformed, since they are
// what the client matches the answer with; From, To, Call-ID and CSeq are
// omitted when missing or unparseable. A To without a tag gets one derived
// from the request, so retransmissions see the same tag (RFC 3261 8.2.6.2).
//
// It returns nil when msg is not a request, is an ACK (never answered), has
// no Via, or status is outside 100..699. The result never exceeds
// len(msg)+256 bytes.
func StatelessResponse(msg []byte, status int, reason string) []byte {
	return statelessResponse(msg, status, reason, "", nil)
}

// statelessResponse is StatelessResponse with a prefix for the To tag it
// makes and extra header lines (each ending in CRLF) before
// Content-Length.
func statelessResponse(msg []byte, status int, reason, tagPrefix string, extra []byte) []byte {
	if status < 100 || status > 699 {
		return nil
	}
	nl := indexLF(msg, 0)
	if nl < 0 {
		return nil
	}
	line := trimCR(msg[:nl])
	if classify(line) != kindRequest || string(line[:tokenLen(line, 0)]) == "ACK" {
		return nil
	}

	var found [hCount][]byte // first value of each wanted field
	vias := 0
	s := scanner{msg: msg, pos: nl + 1, maxLine: len(msg)}
	for {
		name, value, st := s.next()
		if st == stEnd || st == stTruncated {
			break
		}
		if st != stHeader {
			continue
		}
		switch k := headerKind(name); k {
		case hVia:
			vias++
		case hFrom, hTo, hCallID, hCSeq:
			if found[k] == nil {
				found[k] = trimLWS(value)
			}
		}
	}
	if vias == 0 {
		return nil
	}

	limit := len(msg) + 256
	tail := len("Content-Length: 0\r\n\r\n") + len(extra)
	out := make([]byte, 0, min(limit, 1024))
	out = append(out, "SIP/2.0 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = appendReason(out, reason, status)
	out = append(out, "\r\n"...)

	// Second pass for the Vias, so they keep their order and come first.
	s = scanner{msg: msg, pos: nl + 1, maxLine: len(msg)}
	for {
		name, value, st := s.next()
		if st == stEnd || st == stTruncated {
			break
		}
		if st != stHeader || headerKind(name) != hVia {
			continue
		}
		v := trimLWS(value)
		if len(out)+len("Via: \r\n")+len(v)+tail > limit {
			break // compact input can outgrow its copy; stay bounded
		}
		out = appendField(out, "Via", v)
	}

	from, to, callID, cseq := found[hFrom], found[hTo], found[hCallID], found[hCSeq]
	if from != nil {
		if end, _, _, why, _ := addr(from, 0, ""); why != "" || end != len(from) {
			from = nil
		}
	}
	toTag := false
	if to != nil {
		end, _, hasTag, why, _ := addr(to, 0, "tag")
		if why != "" || end != len(to) {
			to = nil
		}
		toTag = hasTag || status == 100
	}
	if !validCallID(callID) {
		callID = nil
	}
	if cseq != nil && !validCSeq(cseq) {
		cseq = nil
	}
	out = appendIfFits(out, "From", from, nil, limit-tail)
	var tag []byte
	if to != nil && !toTag {
		tag = responseTag(tagPrefix, from, callID, cseq)
	}
	out = appendIfFits(out, "To", to, tag, limit-tail)
	out = appendIfFits(out, "Call-ID", callID, nil, limit-tail)
	out = appendIfFits(out, "CSeq", cseq, nil, limit-tail)
	out = append(out, extra...)
	return append(out, "Content-Length: 0\r\n\r\n"...)
}

// appendField writes "name: value" with folds collapsed to single spaces.
func appendField(out []byte, name string, v []byte) []byte {
	out = append(out, name...)
	out = append(out, ": "...)
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' {
			out = append(out, ' ')
			i = skipLWS(v, i) - 1
			continue
		}
		out = append(out, v[i])
	}
	return append(out, "\r\n"...)
}

func appendIfFits(out []byte, name string, v, tag []byte, limit int) []byte {
	if v == nil || len(out)+len(name)+len(v)+len(tag)+4 > limit {
		return out
	}
	if tag != nil {
		out = appendField(out, name, v)
		out = out[:len(out)-2]
		out = append(out, tag...)
		return append(out, "\r\n"...)
	}
	return appendField(out, name, v)
}

// appendReason writes a cleaned reason phrase: no control bytes, bounded.
func appendReason(out []byte, reason string, status int) []byte {
	n := 0
	for i := 0; i < len(reason) && n < maxReason; i++ {
		if c := reason[i]; !isCtl(c) {
			out = append(out, c)
			n++
		}
	}
	if n == 0 {
		out = append(out, defaultReason(status)...)
	}
	return out
}

func defaultReason(status int) string {
	switch status {
	case 400:
		return "Bad Request"
	case 413:
		return "Request Entity Too Large"
	case 416:
		return "Unsupported URI Scheme"
	case 420:
		return "Bad Extension"
	case 483:
		return "Too Many Hops"
	case 500:
		return "Server Internal Error"
	case 501:
		return "Not Implemented"
	case 503:
		return "Service Unavailable"
	case 505:
		return "Version Not Supported"
	case 513:
		return "Message Too Large"
	}
	return "Error"
}

// responseTag derives a To tag from the request so that a retransmitted
// request gets the very same answer.
func responseTag(prefix string, from, callID, cseq []byte) []byte {
	h := fnv.New64a()
	h.Write(from)
	h.Write(callID)
	h.Write(cseq)
	tag := make([]byte, 0, 5+len(prefix)+16)
	tag = append(tag, ";tag="...)
	tag = append(tag, prefix...)
	return strconv.AppendUint(tag, h.Sum64(), 16)
}

// validCSeq checks "number LWS method" without the request-method match.
func validCSeq(v []byte) bool {
	c := checker{}
	why, _ := c.checkCSeq(v)
	return why == ""
}
