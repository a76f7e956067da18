package mediarelay

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

// fuzzCodecs is the menu the fuzzer picks allowed codecs from by bit mask.
var fuzzCodecs = []string{"pcmu", "pcma", "g722", "g729", "telephone-event", "opus", "h264", "rtx"}

// FuzzRewriteSDP: never panic; a successful rewrite re-parses with the same
// m= lines, only the SBC address in o=/c=, and is stable when rewritten again.
func FuzzRewriteSDP(f *testing.F) {
	for i, s := range samples {
		f.Add([]byte(s), uint8(i*37), i%2 == 0)
		f.Add([]byte(crlf(s)), uint8(0), i%2 == 1)
	}
	f.Fuzz(func(t *testing.T, body []byte, mask uint8, v6 bool) {
		in, perr := ParseSDP(body)
		n := 1
		if perr == nil {
			n = len(in.Media)
		}
		r := fuzzRewrite(n, mask, v6)
		out, sess, err := RewriteSDP(body, r)
		if perr != nil {
			if !errors.Is(perr, ErrBadSDP) || !errors.Is(err, ErrBadSDP) {
				t.Fatalf("parse error %v / rewrite error %v do not wrap ErrBadSDP", perr, err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrNoCodec) && !errors.Is(err, ErrBadSDP) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		checkFuzzOutput(t, out, sess, r)
		again, _, err := RewriteSDP(out, r)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("rewrite not stable (err %v):\n%q\n%q", err, out, again)
		}
	})
}

func fuzzRewrite(n int, mask uint8, v6 bool) Rewrite {
	r := Rewrite{Addr: netip.MustParseAddr("192.0.2.1"), SessID: "42", Version: 7, Username: "EdgeSBC"}
	if v6 {
		r.Addr = netip.MustParseAddr("2001:db8::99")
	}
	for i := range n {
		r.Ports = append(r.Ports, 20000+2*i)
	}
	for i, c := range fuzzCodecs {
		if mask&(1<<i) != 0 {
			r.Codecs = append(r.Codecs, c)
		}
	}
	return r
}

func checkFuzzOutput(t *testing.T, out []byte, in *Session, r Rewrite) {
	t.Helper()
	got, err := ParseSDP(out)
	if err != nil {
		t.Fatalf("output does not re-parse: %v\n%q", err, out)
	}
	if len(got.Media) != len(in.Media) {
		t.Fatalf("%d m= lines became %d", len(in.Media), len(got.Media))
	}
	if got.OriginVersion != r.Version || got.OriginSessID != r.SessID {
		t.Fatalf("o= not rewritten: %+v", got)
	}
	for i, m := range got.Media {
		if m.Addr.IsValid() && m.Addr != r.Addr {
			t.Fatalf("m[%d] still points at %v", i, m.Addr)
		}
		if m.Port != 0 && (m.Port != r.Ports[i] || in.Media[i].Port == 0) {
			t.Fatalf("m[%d] port %d (was %d, Ports %d)", i, m.Port, in.Media[i].Port, r.Ports[i])
		}
		if !isSubsequence(m.Formats, in.Media[i].Formats) {
			t.Fatalf("m[%d] formats %v not from %v", i, m.Formats, in.Media[i].Formats)
		}
	}
	checkAddresses(t, out, r.Addr)
}
