package sipguard

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// addSeeds adds the torture files (when ../shared is there) and the table.
func addSeeds(f *testing.F) {
	if ents, err := os.ReadDir(tortureDir); err == nil {
		for _, e := range ents {
			if filepath.Ext(e.Name()) == ".dat" {
				if b, err := os.ReadFile(filepath.Join(tortureDir, e.Name())); err == nil {
					f.Add(b)
				}
			}
		}
	}
	for _, tc := range checkCases {
		f.Add([]byte(tc.msg))
	}
}

// FuzzCheck: neither function may panic, an answer stays within
// len(input)+256 bytes, and every Reject can actually be answered.
func FuzzCheck(f *testing.F) {
	addSeeds(f)
	small := Limits{MaxMessage: 512, MaxHeaders: 8, MaxHeaderLine: 64}
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, lim := range []Limits{{}, small} {
			v := Check(msg, lim)
			switch v.Action {
			case Accept, Drop:
				if v.Status != 0 {
					t.Fatalf("%s with status %d", v.Action, v.Status)
				}
			case Reject:
				if v.Status < 400 || v.Status > 699 || v.Reason == "" || v.Why == "" {
					t.Fatalf("odd Reject %+v", v)
				}
				if StatelessResponse(msg, v.Status, v.Reason) == nil {
					t.Fatalf("Reject %+v, but no answer possible", v)
				}
			default:
				t.Fatalf("action %d", v.Action)
			}
			if v.Action != Accept && v.Why == "" {
				t.Fatalf("%+v without a cause", v)
			}
		}
		r := StatelessResponse(msg, 400, "Bad Request")
		if len(r) > len(msg)+256 {
			t.Fatalf("answer of %d bytes for %d input bytes", len(r), len(msg))
		}
		if r != nil {
			Check(r, Limits{MaxMessage: len(r)})
		}
	})
}

// FuzzAcceptParses: whatever Check accepts, sipgo can parse, so nothing the
// guard lets through vanishes in sipgo's log. Two known sipgo gaps on valid
// SIP are skipped: bare LF line ends, and a bare addr-spec after ", " in a
// list (sipgo takes the space for part of the URI scheme).
func FuzzAcceptParses(f *testing.F) {
	addSeeds(f)
	p := sip.NewParser()
	f.Fuzz(func(t *testing.T, msg []byte) {
		if Check(msg, Limits{}).Action != Accept || onlyCRLF(msg) {
			return
		}
		_, err := p.ParseSIP(msg)
		if err == nil {
			return
		}
		head := msg
		if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
			head = msg[:i]
		}
		if bytes.Count(head, []byte("\n")) != bytes.Count(head, []byte("\r\n")) {
			return // bare LF
		}
		if _, err2 := p.ParseSIP(bytes.ReplaceAll(msg, []byte(", "), []byte(","))); err2 == nil {
			return // the list quirk
		}
		t.Fatalf("accepted, but sipgo says %v", err)
	})
}
