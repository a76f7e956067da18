package sbc

import (
	"bytes"
	"strconv"

	"github.com/emiago/sipgo/sip"
)

// The guard never answers an unverified source with more bytes than it
// sent (no amplification), so its interceptors need a UDP request's size
// on the wire. sipgo parses the datagram in its read loop and hands the
// handler only the parsed request, with no raw size. The read filter, the
// last place that sees the bytes, writes the size into the datagram as a
// header right after the request line (markLength); the outermost
// interceptor reads it (rxLen) and keeps the number per request
// (guard.rxLens). The header is left on the request, not removed: sipgo's
// INVITE server transaction reads the request's headers from its own
// timer goroutine (its 100 Trying after 200 ms), so a handler that edits
// them races it. It never leaves the SBC: topology never copies it
// (config.ProtectedHeaders), and local answers copy named headers only.

// rxLenHeader carries the size from the read filter to the interceptors.
const rxLenHeader = "X-Edgesbc-Rx-Len"

// markLength inserts the rx length header into a UDP request from a
// source that has not proved its address; data is returned unchanged
// otherwise.
func (g *guard) markLength(p sip.TransportReadProps, data []byte) []byte {
	if bytes.HasPrefix(data, []byte("SIP/")) || g.known(addrOf(p.RemoteAddr)) {
		return data
	}
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 {
		return data
	}
	n := strconv.Itoa(len(data))
	out := make([]byte, 0, len(data)+len(rxLenHeader)+len(n)+4)
	out = append(out, data[:nl+1]...)
	out = append(out, rxLenHeader...)
	out = append(out, ": "...)
	out = append(out, n...)
	out = append(out, "\r\n"...)
	return append(out, data[nl+1:]...)
}

// rxLen reads the length header of every request before anything else
// runs, and keeps the value for the interceptors' answers. It only reads:
// see above.
func (g *guard) rxLen(next handler) handler {
	return func(r *Realm, req *sip.Request, tx sip.ServerTransaction) {
		h := req.GetHeader(rxLenHeader)
		if h == nil {
			next(r, req, tx)
			return
		}
		n, err := strconv.Atoi(h.Value())
		if err != nil || n <= 0 {
			next(r, req, tx)
			return
		}
		g.rxLens.with(req, n, func() { next(r, req, tx) })
	}
}

// rxLenOf is the wire length of a request from an unverified source, 0
// when not known.
func (g *guard) rxLenOf(req *sip.Request) int {
	n, _ := g.rxLens.get(req)
	return n
}
