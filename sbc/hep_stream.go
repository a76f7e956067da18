package sbc

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"github.com/edgesbc/edgesbc/hep"
)

// HEP over SIP's stream transports: the connections a realm's TCP and TLS
// listeners accept are wrapped, so every message on them is mirrored
// (TLS after decryption). sipgo writes one whole message per Write; reads
// are a stream, cut into messages here by the header end and
// Content-Length. Connections sipgo dials itself (a request toward a TCP
// or TLS target no peer connected from) are made by a net.Dialer value
// inside sipgo and cannot be wrapped: those are not mirrored.

// hepListener wraps each accepted connection.
type hepListener struct {
	net.Listener
	tap *hepTap
	max int // the longest message framed; past it the connection's reads are no longer mirrored
}

// hepListen wraps l when tracing is on.
func (r *Realm) hepListen(l net.Listener) net.Listener {
	if r.hep == nil || l == nil {
		return l
	}
	return &hepListener{Listener: l, tap: r.hep, max: max(r.hep.maxMessage, 1024)}
}

func (l *hepListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	return &hepStreamConn{Conn: c, tap: l.tap, max: l.max,
		local: addrPortOf(c.LocalAddr()), remote: addrPortOf(c.RemoteAddr())}, nil
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// hepStreamConn mirrors one stream connection. Read runs on sipgo's one
// reader goroutine for the connection; buf and lost belong to it.
type hepStreamConn struct {
	net.Conn
	tap           *hepTap
	local, remote netip.AddrPort
	max           int
	buf           []byte
	lost          bool // out of frame: reads no longer mirrored
	// wmu makes a write and its mirror one step, so the collector gets
	// messages in the order they went on the wire: two goroutines writing
	// (a 200 and the BYE after it) could otherwise mirror out of order.
	// A leaf lock: tap.sip never blocks.
	wmu sync.Mutex
}

func (c *hepStreamConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n, err := c.Conn.Write(b)
	if err == nil && n == len(b) {
		c.tap.sip(hep.TCP, c.local, c.remote, b)
	}
	return n, err
}

func (c *hepStreamConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.lost {
		c.feed(b[:n])
	}
	return n, err
}

// feed adds bytes read and mirrors each message they complete.
func (c *hepStreamConn) feed(p []byte) {
	c.buf = append(c.buf, p...)
	for {
		c.buf = bytes.TrimLeft(c.buf, "\r\n") // keepalives between messages (RFC 5626 3.5.1)
		end := bytes.Index(c.buf, []byte("\r\n\r\n"))
		if end < 0 {
			break
		}
		cl, ok := contentLength(c.buf[:end])
		if !ok || cl > c.max {
			c.lost, c.buf = true, nil
			return
		}
		n := end + 4 + cl
		if len(c.buf) < n {
			break
		}
		c.tap.sip(hep.TCP, c.remote, c.local, c.buf[:n])
		c.buf = c.buf[n:]
	}
	if len(c.buf) > 2*c.max {
		c.lost, c.buf = true, nil
		return
	}
	if len(c.buf) == 0 {
		c.buf = nil // let a large buffer go
	}
}

// contentLength reads Content-Length (or l) from a header section; a
// stream message without one has no body. ok is false for a value that
// is not a number.
func contentLength(head []byte) (int, bool) {
	for len(head) > 0 {
		line := head
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else {
			head = nil
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found {
			continue
		}
		name = bytes.TrimSpace(name)
		if bytes.EqualFold(name, []byte("Content-Length")) || bytes.EqualFold(name, []byte("l")) {
			n, err := strconv.Atoi(string(bytes.TrimSpace(value)))
			return n, err == nil && n >= 0
		}
	}
	return 0, true
}
