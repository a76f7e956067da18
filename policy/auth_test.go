package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icholy/digest"
)

func TestDigest(t *testing.T) {
	t0 := time.Now()
	src := netip.MustParseAddr("198.51.100.10")
	d := NewDigest("sbc.example", []string{"SHA-256", "MD5"}, map[string]string{"pbx": "s3cret"}, time.Minute)
	chals := d.Challenges(src, t0, false)
	if len(chals) != 2 || !strings.Contains(chals[0], "algorithm=SHA-256") || !strings.Contains(chals[1], "algorithm=MD5") {
		t.Fatalf("challenges %q", chals)
	}
	answer := func(chal, user, pw, method, uri string) string {
		c, err := digest.ParseChallenge(chal)
		if err != nil {
			t.Fatal(err)
		}
		cr, err := digest.Digest(c, digest.Options{Method: method, URI: uri, Username: user, Password: pw, Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		return cr.String()
	}
	uri := "sip:198.51.100.1"
	tests := []struct {
		name   string
		header string
		method string
		from   netip.Addr
		at     time.Time
		want   error
	}{
		{"SHA-256", answer(chals[0], "pbx", "s3cret", "REGISTER", uri), "REGISTER", src, t0, nil},
		{"MD5", answer(chals[1], "pbx", "s3cret", "REGISTER", uri), "REGISTER", src, t0, nil},
		{"wrong password", answer(chals[0], "pbx", "guess", "REGISTER", uri), "REGISTER", src, t0, ErrBadCredentials},
		{"unknown user", answer(chals[1], "admin", "s3cret", "REGISTER", uri), "REGISTER", src, t0, ErrBadCredentials},
		{"other method", answer(chals[0], "pbx", "s3cret", "REGISTER", uri), "INVITE", src, t0, ErrBadCredentials},
		{"nonce from another address", answer(chals[0], "pbx", "s3cret", "REGISTER", uri), "REGISTER", netip.MustParseAddr("203.0.113.20"), t0, ErrBadCredentials},
		{"stale nonce", answer(chals[0], "pbx", "s3cret", "REGISTER", uri), "REGISTER", src, t0.Add(2 * time.Minute), ErrStaleNonce},
		{"forged nonce", strings.Replace(answer(chals[0], "pbx", "s3cret", "REGISTER", uri), `nonce="`, `nonce="AAAA`, 1), "REGISTER", src, t0, ErrBadCredentials},
		{"other realm", answer(strings.Replace(chals[0], "sbc.example", "other", 1), "pbx", "s3cret", "REGISTER", uri), "REGISTER", src, t0, ErrNoCredentials},
		{"not digest", "Basic cGJ4OnMzY3JldA==", "REGISTER", src, t0, ErrNoCredentials},
		{"garbage", `Digest username="pbx", nc=zz`, "REGISTER", src, t0, ErrBadCredentials},
		{"algorithm not offered", answer(strings.Replace(chals[0], "SHA-256", "SHA-512", 1), "pbx", "s3cret", "REGISTER", uri), "REGISTER", src, t0, ErrBadCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user, err := d.Verify(tc.header, tc.method, tc.from, tc.at)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if tc.want == nil && user != "pbx" {
				t.Fatalf("user %q", user)
			}
		})
	}
	// RFC 2617 style answer without qop (old clients) still verifies.
	c, _ := digest.ParseChallenge(chals[1])
	c.QOP = nil
	cr, _ := digest.Digest(c, digest.Options{Method: "INVITE", URI: uri, Username: "pbx", Password: "s3cret"})
	if _, err := d.Verify(cr.String(), "INVITE", src, t0); err != nil {
		t.Fatalf("no-qop answer: %v", err)
	}
}
