package sbc_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// startStreamGuarded runs a B2BUA whose carrier realm listens on TCP too,
// with a guard section.
func startStreamGuarded(t *testing.T, guard string) *testSBC {
	t.Helper()
	cp, ep := freePort(t), freePort(t)
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", transports: [udp, tcp]}
  - {name: enterprise, listen: "127.0.0.1:%d"}
media: {enabled: false}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["127.0.0.1:9"], target_timeout: 400ms}
%s`, cp, ep, guard)
	return runSBC(t, y, cp, ep)
}

// closedWithin says whether the server closes c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

func dialFrom(t *testing.T, ip, to string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: time.Second}
	c, err := d.Dial("tcp", to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A stranger holds at most sources.max_connections at once (one more is
// closed at accept), a connection that says nothing within
// streams.first_read is closed, and so is one idle past streams.idle; a
// stranger's request over TCP gets the classification's 403.
func TestGuardStreams(t *testing.T) {
	s := startStreamGuarded(t, `guard:
  sources: {max_connections: 2}
  streams: {first_read: 300ms, idle: 600ms}
  realms: [{realm: carrier, peers: ["127.0.0.1"]}]
`)
	const stranger = "127.0.0.5"
	a, b := dialFrom(t, stranger, s.carrier), dialFrom(t, stranger, s.carrier)
	// a sends a request at once: 403 (a stranger).
	local := a.LocalAddr().String()
	fmt.Fprintf(a, "INVITE sip:1000@%s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-st1\r\nMax-Forwards: 70\r\nFrom: <sip:x@%s>;tag=s1\r\nTo: <sip:1000@%s>\r\nCall-ID: st-1\r\nCSeq: 1 INVITE\r\nContact: <sip:x@%s;transport=tcp>\r\nContent-Length: 0\r\n\r\n",
		s.carrier, local, stranger, s.carrier, local)
	_ = a.SetReadDeadline(time.Now().Add(wait))
	line, err := bufio.NewReader(a).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SIP/2.0 403") {
		t.Fatalf("stranger's INVITE over TCP: %q %v, want 403", line, err)
	}
	start := time.Now()
	third := dialFrom(t, stranger, s.carrier)
	if !closedWithin(third, 200*time.Millisecond) {
		t.Error("a third connection from the stranger stayed open")
	}
	if n := s.rejected(t, "source_connections"); n != 1 {
		t.Errorf("rejected{source_connections} = %v, want 1", n)
	}
	// b says nothing: closed after first_read.
	if !closedWithin(b, time.Second) {
		t.Error("a silent connection outlived first_read")
	}
	// a idles out after its request.
	if !closedWithin(a, 2*time.Second) {
		t.Error("an idle stranger's connection outlived streams.idle")
	} else if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("closed %v after its last request, before streams.idle", d)
	}
	// Places are given back: the stranger may connect again.
	again := dialFrom(t, stranger, s.carrier)
	if closedWithin(again, 100*time.Millisecond) {
		t.Error("the stranger's places were not given back")
	}
	// A scanner over TCP is banned as over UDP, and its next connection
	// is closed at accept.
	sc := dialFrom(t, "127.0.0.6", s.carrier)
	fmt.Fprintf(sc, "OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-sc1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:%s>\r\nCall-ID: sc-1\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n",
		s.carrier, sc.LocalAddr(), s.carrier)
	eventually(t, wait, "the TCP scanner banned", func() bool { return len(s.Bans().List(time.Now())) == 1 })
	if !closedWithin(dialFrom(t, "127.0.0.6", s.carrier), 200*time.Millisecond) {
		t.Error("a banned source's connection stayed open")
	}
	// The strangers' bucket (20/s, burst 40) over TCP as over UDP: of 60
	// requests at once, those past the burst get 503.
	rc := dialFrom(t, "127.0.0.7", s.carrier)
	for i := range 60 {
		fmt.Fprintf(rc, "OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-rt%d\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:%s>\r\nCall-ID: rt-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
			s.carrier, rc.LocalAddr(), i, s.carrier, i)
	}
	codes := map[string]int{}
	br := bufio.NewReader(rc)
	_ = rc.SetReadDeadline(time.Now().Add(wait))
	for n := 0; n < 60; {
		l, err := br.ReadString('\n')
		if err != nil {
			break
		}
		if strings.HasPrefix(l, "SIP/2.0 ") {
			codes[l[8:11]]++
			n++
		}
	}
	if codes["403"] < 35 || codes["403"] > 45 || codes["503"] < 15 {
		t.Errorf("60 OPTIONS over TCP from a stranger: %v, want about 40 refused as a stranger's (403) and the rest 503", codes)
	}
	// A peer's connection is not closed for idling once it spoke.
	p := dialFrom(t, "127.0.0.1", s.carrier)
	fmt.Fprintf(p, "\r\n\r\n")
	if closedWithin(p, 1200*time.Millisecond) {
		t.Error("a peer's connection closed for idling")
	}
}
