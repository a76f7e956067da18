package hep

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// unhex reads hex with spaces and newlines between the chunks.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The expected bytes are built by hand from the HEP3 specification's
// chunk table, not by this encoder.
func TestEncodeIPv4ByteExact(t *testing.T) {
	p := Packet{
		Src:           netip.MustParseAddrPort("10.0.0.1:5060"),
		Dst:           netip.MustParseAddrPort("10.0.0.2:5080"),
		Transport:     UDP,
		Time:          time.Unix(1700000000, 123456789),
		Type:          TypeSIP,
		CaptureID:     2001,
		AuthKey:       "pw",
		CorrelationID: "cid",
		Payload:       []byte("OPTIONS"),
	}
	want := unhex(t, `
		48455033 007b
		0000 0001 0007 02
		0000 0002 0007 11
		0000 0003 000a 0a000001
		0000 0004 000a 0a000002
		0000 0007 0008 13c4
		0000 0008 0008 13d8
		0000 0009 000a 6553f100
		0000 000a 000a 0001e240
		0000 000b 0007 01
		0000 000c 000a 000007d1
		0000 000e 0008 7077
		0000 0011 0009 636964
		0000 000f 000d 4f5054494f4e53`)
	got, err := p.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding differs\n got %x\nwant %x", got, want)
	}
	if p.Size() != len(want) {
		t.Errorf("Size %d, encoded %d", p.Size(), len(want))
	}
	// Appending keeps what was there.
	got, _ = p.Append([]byte("xy"))
	if !bytes.Equal(got[:2], []byte("xy")) || !bytes.Equal(got[2:], want) {
		t.Errorf("Append overwrote its prefix: %x", got[:8])
	}
}

// Without auth key and correlation ID those chunks are left out; an IPv6
// address beside an IPv4 one sends both as IPv6 (the IPv4 one mapped).
func TestEncodeIPv6NoOptionalChunks(t *testing.T) {
	p := Packet{
		Src:       netip.MustParseAddrPort("[2001:db8::1]:5060"),
		Dst:       netip.MustParseAddrPort("192.0.2.7:9"),
		Transport: TCP,
		Type:      TypeLog,
		CaptureID: 1,
		Payload:   []byte("{}"),
	}
	want := unhex(t, `
		48455033 007d
		0000 0001 0007 0a
		0000 0002 0007 06
		0000 0005 0016 20010db8000000000000000000000001
		0000 0006 0016 00000000000000000000ffffc0000207
		0000 0007 0008 13c4
		0000 0008 0008 0009
		0000 0009 000a 00000000
		0000 000a 000a 00000000
		0000 000b 0007 64
		0000 000c 000a 00000001
		0000 000f 0008 7b7d`)
	got, err := p.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding differs\n got %x\nwant %x", got, want)
	}
}

func TestEncodeTooLarge(t *testing.T) {
	p := Packet{Src: netip.MustParseAddrPort("10.0.0.1:1"), Dst: netip.MustParseAddrPort("10.0.0.2:2"), Payload: make([]byte, MaxPacket)}
	b, err := p.Append([]byte("keep"))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
	if string(b) != "keep" {
		t.Errorf("a refused packet left bytes behind: %q", b)
	}
	// The largest payload that fits does.
	p.Payload = p.Payload[:MaxPacket-(p.Size()-MaxPacket)]
	if b, err := p.Append(nil); err != nil || len(b) != MaxPacket {
		t.Fatalf("largest packet: %d bytes, %v", len(b), err)
	}
}
