package sbc

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/hep"
)

func TestCallIDOf(t *testing.T) {
	for in, want := range map[string]string{
		"INVITE sip:a@b SIP/2.0\r\nVia: x\r\nCall-ID: abc@h\r\n\r\n":      "abc@h",
		"SIP/2.0 200 OK\r\ni:  compact \r\nCSeq: 1 INVITE\r\n\r\n":        "compact",
		"BYE sip:a SIP/2.0\ncall-id:lf-only\n\n":                          "lf-only",
		"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\nCall-ID: in-the-body\r\n": "",
		"garbage":        "",
		"":               "",
		"X\r\nCall-ID:":  "",
		"X\r\n:\r\n\r\n": "",
	} {
		if got := callIDOf([]byte(in)); got != want {
			t.Errorf("callIDOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// streamTap is a hepStreamConn whose tap sends to a UDP socket the test
// reads; payloads returns the SIP payload of each packet received.
func streamTap(t *testing.T) (*hepStreamConn, func(n int, d time.Duration) []string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	c, err := hep.New(hep.Config{Address: pc.LocalAddr().String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(time.Second) })
	tap := &hepTap{calls: newCallTable()}
	tap.c.Store(c)
	conn := &hepStreamConn{tap: tap, max: 1024,
		local: netip.MustParseAddrPort("127.0.0.1:5060"), remote: netip.MustParseAddrPort("127.0.0.1:40000")}
	payloads := func(n int, d time.Duration) []string {
		var out []string
		buf := make([]byte, 65535)
		for range n {
			_ = pc.SetReadDeadline(time.Now().Add(d))
			m, _, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			// Walk the chunks to the payload (type 0x000f).
			for b := buf[6:m]; len(b) >= 6; {
				typ, l := binary.BigEndian.Uint16(b[2:]), int(binary.BigEndian.Uint16(b[4:]))
				if l < 6 || l > len(b) {
					t.Fatalf("bad chunk length %d", l)
				}
				if typ == 0x000f {
					out = append(out, string(b[6:l]))
				}
				b = b[l:]
			}
		}
		return out
	}
	return conn, payloads
}

func TestStreamFraming(t *testing.T) {
	m1 := "OPTIONS sip:a SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n"
	m2 := "MESSAGE sip:a SIP/2.0\r\nCall-ID: 2\r\nl: 5\r\n\r\nhello"
	m3 := "BYE sip:a SIP/2.0\r\nCall-ID: 3\r\n\r\n" // no Content-Length: no body
	c, payloads := streamTap(t)
	all := "\r\n\r\n" + m1 + m2 + "\r\n" + m3
	for i := range len(all) { // one byte per read: the worst split
		c.feed([]byte{all[i]})
	}
	c.feed([]byte(m1 + m2)) // two in one read
	got := payloads(5, time.Second)
	want := []string{m1, m2, m3, m1, m2}
	if len(got) != len(want) {
		t.Fatalf("mirrored %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d: %q, want %q", i, got[i], want[i])
		}
	}
	if c.lost || len(c.buf) != 0 {
		t.Errorf("after whole messages: lost %v, %d bytes held", c.lost, len(c.buf))
	}
}

// A stream out of frame (a bad Content-Length, or a message past the
// bound) stops being mirrored rather than mirroring garbage, and holds
// nothing.
func TestStreamFramingLost(t *testing.T) {
	for name, in := range map[string]string{
		"bad length":    "INFO sip:a SIP/2.0\r\nContent-Length: x\r\n\r\n",
		"huge length":   "INFO sip:a SIP/2.0\r\nContent-Length: 99999\r\n\r\n",
		"no header end": strings.Repeat("X", 3000),
	} {
		c, payloads := streamTap(t)
		c.feed([]byte(in))
		if !c.lost || c.buf != nil {
			t.Errorf("%s: lost %v, %d bytes held", name, c.lost, len(c.buf))
		}
		if got := payloads(1, 100*time.Millisecond); len(got) != 0 {
			t.Errorf("%s: mirrored %q", name, got)
		}
	}
}

// BenchmarkHEPTap is the cost the SIP path pays per mirrored message:
// finding the Call-ID, the call table lookup, encoding and queueing.
func BenchmarkHEPTap(b *testing.B) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	c, err := hep.New(hep.Config{Address: pc.LocalAddr().String(), QueueSize: 1 << 16}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(0)
	tap := &hepTap{calls: newCallTable()}
	tap.c.Store(c)
	msg := []byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: bench-call\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
	src, dst := netip.MustParseAddrPort("127.0.0.1:5060"), netip.MustParseAddrPort("127.0.0.1:5080")
	b.ReportAllocs()
	for b.Loop() {
		tap.sip(hep.UDP, src, dst, msg)
	}
}
