package sbc

import (
	"bytes"
	"errors"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
)

// FuzzCrossBody: any Content-Type, Content-Encoding and body either cross
// (and then the SDP went through the anchor, and a multipart result parses
// back) or get a bodyError with a 4xx; never a panic, never the input's
// SDP unanchored.
func FuzzCrossBody(f *testing.F) {
	sdp := "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n"
	f.Add("multipart/mixed;boundary=b", "", []byte("--b\r\nContent-Type: application/sdp\r\n\r\n"+sdp+"\r\n--b\r\nContent-Type: application/isup\r\n\r\n\x01\x00\r\n--b--\r\n"))
	f.Add("multipart/mixed", "", []byte("--b\r\n"))
	f.Add("application/sdp", "gzip", []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"))
	f.Add("message/sipfrag", "", []byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1\r\n"))
	f.Add("multipart/mixed;boundary=o", "", []byte("--o\r\nContent-Type: multipart/mixed;boundary=i\r\n\r\n--i--\r\n--o--\r\n"))
	f.Add("", "identity", []byte(sdp))
	pass := &Realm{cfg: config.Realm{Bodies: config.Bodies{ISUP: config.BodyPass, Allow: []string{"text/plain"}}}}
	f.Fuzz(func(t *testing.T, ctype, enc string, body []byte) {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Host: "x"})
		if ctype != "" {
			req.AppendHeader(sip.NewHeader("Content-Type", ctype))
		}
		if enc != "" {
			req.AppendHeader(sip.NewHeader("Content-Encoding", enc))
		}
		req.SetBody(body)
		anchored := 0
		out, ct, err := crossBody(pass, pass, req, func(b []byte) ([]byte, error) {
			anchored++
			if len(b) > maxBodyDecoded {
				t.Fatalf("anchor got %d bytes", len(b))
			}
			return []byte("ANCHORED"), nil
		})
		var be *bodyError
		switch {
		case err != nil && !errors.As(err, &be):
			t.Fatalf("error %v is not a bodyError", err)
		case err != nil && (be.code < 400 || be.code > 499):
			t.Fatalf("refusal %d", be.code)
		case err == nil && len(out) > 0 && ct == "":
			t.Fatalf("body without a Content-Type")
		case err == nil && anchored > 1:
			t.Fatalf("anchored %d SDPs", anchored)
		case err == nil && ct == "application/sdp" && !bytes.Equal(out, []byte("ANCHORED")):
			t.Fatalf("SDP left unanchored: %q", out)
		}
	})
}
