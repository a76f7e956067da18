package sipguard

import "bytes"

// Dialog reads, from a raw request, its method and whether it is out of
// any dialog (its To header has no tag): what peer classification needs
// before sipgo parses the datagram (and creates a transaction for it).
// It reads at most the header section; a message it cannot read gives
// ok false (the full check decides about it).
func Dialog(msg []byte) (method []byte, outOfDialog, ok bool) {
	nl := bytes.IndexByte(msg, '\n')
	if nl < 0 {
		return nil, false, false
	}
	n := tokenLen(msg, 0)
	if n == 0 || n >= nl || msg[n] != ' ' {
		return nil, false, false
	}
	method = msg[:n]
	for p := nl + 1; p < len(msg); {
		end := bytes.IndexByte(msg[p:], '\n')
		if end < 0 {
			end = len(msg) - p
		}
		line := trimCR(msg[p : p+end])
		p += end + 1
		if len(line) == 0 {
			break // end of headers
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := trimLWS(line[:colon])
		if !equalFold(name, "to") && !equalFold(name, "t") {
			continue
		}
		return method, !hasTag(line[colon+1:]), true
	}
	return method, false, false // no To: let the full check refuse it
}

// hasTag says whether an address header value carries a tag parameter
// (after the URI: past the closing '>' when there is one).
func hasTag(v []byte) bool {
	if i := bytes.LastIndexByte(v, '>'); i >= 0 {
		v = v[i+1:]
	}
	for len(v) > 0 {
		semi := bytes.IndexByte(v, ';')
		if semi < 0 {
			return false
		}
		v = v[semi+1:]
		name := v
		if e := bytes.IndexAny(v, "=;"); e >= 0 {
			name = v[:e]
		}
		if equalFold(trimLWS(name), "tag") {
			return true
		}
	}
	return false
}
