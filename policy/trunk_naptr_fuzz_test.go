package policy

import (
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// FuzzNAPTR: any bytes as a DNS answer or as NAPTR RDATA parse without a
// panic, and a parsed record never holds more than the input did.
func FuzzNAPTR(f *testing.F) {
	f.Add([]byte{0, 10, 0, 20, 1, 's', 7, 'S', 'I', 'P', '+', 'D', '2', 'U', 0, 4, '_', 's', 'i', 'p', 4, '_', 'u', 'd', 'p', 1, 'x', 0})
	f.Add([]byte{0, 1, 0, 1, 9, 's'})
	f.Add([]byte{0, 1, 0, 1, 0, 0, 0, 0xc0, 0x0c})
	f.Add([]byte{})
	q := dnsmessage.MustNewName("x.test.")
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, ok := parseNAPTRData(b); ok {
			if len(r.Flags)+len(r.Service)+len(r.Regexp)+len(r.Replacement) > len(b) {
				t.Fatalf("record larger than its data: %+v", r)
			}
		}
		recs, _, _ := parseNAPTRAnswer(b, 0, q)
		if len(recs) > len(b)/5+1 {
			t.Fatalf("%d records from %d bytes", len(recs), len(b))
		}
	})
}
