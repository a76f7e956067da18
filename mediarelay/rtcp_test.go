package mediarelay

import (
	"encoding/binary"
	"testing"
)

func TestParseRTPHeader(t *testing.T) {
	good := rtpPacket(t, 0xbeef, 0x01020304, 0xcafe, 'a')
	v1 := append([]byte(nil), good...)
	v1[0] = 1 << 6
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"good", good, true},
		{"fixed header only", good[:12], true},
		{"11 bytes", good[:11], false},
		{"empty", nil, false},
		{"version 1", v1, false},
		{"version 3", append([]byte{0xc0}, good[1:]...), false},
	}
	for _, tt := range tests {
		h, ok := parseRTPHeader(tt.b)
		if ok != tt.ok {
			t.Errorf("%s: ok = %v, want %v", tt.name, ok, tt.ok)
			continue
		}
		if ok && (h.seq != 0xbeef || h.ts != 0x01020304 || h.ssrc != 0xcafe) {
			t.Errorf("%s: header %+v", tt.name, h)
		}
	}
}

func TestParseRTCPReport(t *testing.T) {
	emptySR := make([]byte, 28) // SR without report blocks
	emptySR[0], emptySR[1] = 2<<6, rtcpPTSR
	binary.BigEndian.PutUint16(emptySR[2:], 6)
	bye := []byte{2<<6 | 1, 203, 0, 1, 0, 0, 0, 1}
	zeroLen := []byte{2 << 6, 204, 0, 0} // header-only APP: length 0 words
	shortRR := rr(64, 160)
	shortRR[0] = 2<<6 | 1
	binary.BigEndian.PutUint16(shortRR[2:], 6) // RC=1 but room for no block
	v1 := rr(64, 160)
	v1[0] = 1<<6 | 1
	past := rr(64, 160)
	binary.BigEndian.PutUint16(past[2:], 0xffff)
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	tests := []struct {
		name   string
		b      []byte
		ok     bool
		frac   uint8
		jitter uint32
		valid  bool // validRTCP
	}{
		{"RR", rr(64, 160), true, 64, 160, true},
		{"SR+SDES", sr(128, 800), true, 128, 800, true},
		{"SR without blocks, then RR", cat(emptySR, rr(1, 2)), true, 1, 2, true},
		{"BYE, zero-length APP, RR", cat(bye, zeroLen, rr(3, 4)), true, 3, 4, true},
		{"BYE only", bye, false, 0, 0, true},
		{"RC says 1, length says 0 blocks", shortRR[:28], false, 0, 0, true},
		{"version 1", v1, false, 0, 0, false},
		{"length past the end", past, false, 0, 0, false},
		{"RR cut short", rr(64, 160)[:31], false, 0, 0, false},
		{"RR then garbage", cat(rr(5, 6), []byte{0xff}), true, 5, 6, true},
		{"garbage then RR", cat([]byte{0, 0, 0, 0}, rr(5, 6)), false, 0, 0, false},
		{"4 bytes", []byte{0x81, 201, 0, 0}, false, 0, 0, false},
		{"empty", nil, false, 0, 0, false},
	}
	for _, tt := range tests {
		r, ok := parseRTCPReport(tt.b)
		if ok != tt.ok || r.fractionLost != tt.frac || r.jitter != tt.jitter {
			t.Errorf("%s: parseRTCPReport = %+v, %v; want {%d %d}, %v", tt.name, r, ok, tt.frac, tt.jitter, tt.ok)
		}
		if v := validRTCP(tt.b); v != tt.valid {
			t.Errorf("%s: validRTCP = %v, want %v", tt.name, v, tt.valid)
		}
	}
}

func TestLooksLikeRTCP(t *testing.T) {
	for _, tt := range []struct {
		b    []byte
		want bool
	}{
		{rr(0, 0), true},
		{sr(0, 0), true},
		{rtpPacket(t, 1, 0, 1, 'a'), false},    // PT 0
		{[]byte{0x80, 0x80 | 96, 0, 0}, false}, // marker + PT 96 (dynamic) = 224
		{[]byte{0x80, 0x80 | 64, 0, 0}, true},  // PT 64 with marker: ambiguous, RFC 5761 forbids it
		{[]byte{0x40, 201, 0, 0}, false},       // version 1
		{[]byte{0x80, 201}, false},             // too short
	} {
		if got := looksLikeRTCP(tt.b); got != tt.want {
			t.Errorf("looksLikeRTCP(% x) = %v, want %v", tt.b[:min(len(tt.b), 4)], got, tt.want)
		}
	}
}

// FuzzParseRTCP: no input panics or reads out of bounds, and a report is
// only found where a whole block fits.
func FuzzParseRTCP(f *testing.F) {
	f.Add(rr(64, 160))
	f.Add(sr(1, 2))
	f.Add([]byte{0x81, 201, 0, 0})
	f.Add([]byte{0x81, 200, 0xff, 0xff, 0, 0, 0, 0})
	f.Add(rtpPacket(f, 1, 2, 3, 'a'))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := parseRTCPReport(b)
		if ok && len(b) < 8+reportLen {
			t.Fatalf("report %+v from %d bytes", r, len(b))
		}
		if !ok && r != (rtcpReport{}) {
			t.Fatalf("no report but %+v", r)
		}
		if validRTCP(b) && (len(b) < 8 || b[0]>>6 != 2) {
			t.Fatal("validRTCP accepted a bad header")
		}
		if _, ok := parseRTPHeader(b); ok && len(b) < rtpHeaderLen {
			t.Fatal("short RTP header accepted")
		}
		_ = looksLikeRTCP(b)
		var st rtpStats
		if h, ok := parseRTPHeader(b); ok {
			st.update(h, 1234)
			st.update(h, 1234)
			_ = st.lost()
		}
	})
}
