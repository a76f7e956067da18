package sbc

import (
	"errors"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/edgesbc/edgesbc/config"
)

// challenged builds a 401 (or 407) carrying the given challenge headers.
func challenged(code int, chals ...string) *sip.Response {
	res := sip.NewResponse(code, "Unauthorized")
	name := "WWW-Authenticate"
	if code == 407 {
		name = "Proxy-Authenticate"
	}
	for _, c := range chals {
		res.AppendHeader(sip.NewHeader(name, c))
	}
	return res
}

func request(method sip.RequestMethod, uri string) *sip.Request {
	var u sip.Uri
	if err := sip.ParseUri(uri, &u); err != nil {
		panic(err)
	}
	return sip.NewRequest(method, u)
}

func credentials(t *testing.T, req *sip.Request, name string) *digest.Credentials {
	t.Helper()
	h := req.GetHeader(name)
	if h == nil {
		t.Fatalf("no %s in %s", name, req)
	}
	c, err := digest.ParseCredentials(h.Value())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDigestRFCVectors checks the response computation against the worked
// examples of RFC 7616 3.9.1 (MD5 and SHA-256, qop=auth; the same
// computation RFC 8760 uses for SIP) and RFC 2617 3.5 (MD5).
func TestDigestRFCVectors(t *testing.T) {
	const nonce7616 = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
	const opaque7616 = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
	cases := []struct {
		name, chal, cnonce, user, pass, method, uri, want string
	}{
		{"RFC7616-MD5", `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="` + nonce7616 + `", opaque="` + opaque7616 + `"`,
			"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "Mufasa", "Circle of Life", "GET", "/dir/index.html",
			"8ca523f5e9506fed4657c9700eebdbec"},
		{"RFC7616-SHA-256", `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="` + nonce7616 + `", opaque="` + opaque7616 + `"`,
			"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "Mufasa", "Circle of Life", "GET", "/dir/index.html",
			"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
		{"RFC2617-MD5", `Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`,
			"0a4f113b", "Mufasa", "Circle Of Life", "GET", "/dir/index.html",
			"6629fae49393a05397450978507c4ef1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old := newCnonce
			newCnonce = func() string { return c.cnonce }
			defer func() { newCnonce = old }()
			// The request-URI of an HTTP example is a path; the SIP
			// request is only the carrier of method and URI here, so build
			// the digest the way authorize does.
			chal, err := digest.ParseChallenge(c.chal)
			if err != nil {
				t.Fatal(err)
			}
			cred, err := digest.Digest(chal, digest.Options{Method: c.method, URI: c.uri, Username: c.user, Password: c.pass, Cnonce: newCnonce()})
			if err != nil {
				t.Fatal(err)
			}
			if cred.Response != c.want {
				t.Fatalf("response %s, want %s", cred.Response, c.want)
			}
			// And through authorize, with a SIP request: the same inputs
			// must give a response the test recomputes independently.
			req := request(sip.RequestMethod(c.method), "sip:bob@example.org")
			alg, err := authorize(req, challenged(401, c.chal), &config.Credentials{Username: c.user, Password: c.pass})
			if err != nil {
				t.Fatal(err)
			}
			got := credentials(t, req, "Authorization")
			want, _ := digest.Digest(chal, digest.Options{Method: c.method, URI: "sip:bob@example.org", Username: c.user, Password: c.pass, Cnonce: c.cnonce})
			if got.Response != want.Response || got.Cnonce != c.cnonce || got.Nc != 1 || got.QOP != "auth" || got.Opaque != chal.Opaque {
				t.Fatalf("authorize gave %+v, want response %s (alg %s)", got, want.Response, alg)
			}
		})
	}
}

// TestAuthorizeChoosesChallenge: RFC 8760 says the client answers the
// topmost challenge it supports; unknown algorithms, non-digest schemes and
// other realms are passed over.
func TestAuthorizeChoosesChallenge(t *testing.T) {
	sha := `Digest realm="carrier", nonce="n1", algorithm=SHA-256, qop="auth"`
	md5 := `Digest realm="carrier", nonce="n2", algorithm=MD5, qop="auth"`
	other := `Digest realm="elsewhere", nonce="n3", algorithm=SHA-256`
	cases := []struct {
		name   string
		code   int
		chals  []string
		realm  string
		alg    string // "" = error
		header string
	}{
		{"sha256 preferred", 401, []string{sha, md5}, "", "SHA-256", "Authorization"},
		{"server prefers md5", 401, []string{md5, sha}, "", "MD5", "Authorization"},
		{"unknown algorithm skipped", 401, []string{`Digest realm="carrier", nonce="x", algorithm=SHA-1024`, md5}, "", "MD5", "Authorization"},
		{"basic skipped", 401, []string{`Basic realm="carrier"`, sha}, "", "SHA-256", "Authorization"},
		{"no algorithm is MD5", 407, []string{`Digest realm="carrier", nonce="n"`}, "", "MD5", "Proxy-Authorization"},
		{"lower-case algorithm", 407, []string{`Digest realm="carrier", nonce="n", algorithm=sha-256`}, "", "SHA-256", "Proxy-Authorization"},
		{"realm restricts", 401, []string{other, md5}, "carrier", "MD5", "Authorization"},
		{"realm mismatch", 401, []string{other}, "carrier", "", ""},
		{"qop unsupported", 401, []string{`Digest realm="carrier", nonce="n", qop="auth-conf"`}, "", "", ""},
		{"no challenge", 401, nil, "", "", ""},
		{"garbage", 401, []string{`Digest ,,,=="`}, "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := request(sip.INVITE, "sip:+4930123@198.51.100.7")
			alg, err := authorize(req, challenged(c.code, c.chals...), &config.Credentials{Username: "acct", Password: "pw", Realm: c.realm})
			if c.alg == "" {
				if !errors.Is(err, ErrNoUsableChallenge) {
					t.Fatalf("err %v, want ErrNoUsableChallenge", err)
				}
				return
			}
			if err != nil || alg != c.alg {
				t.Fatalf("alg %q err %v, want %q", alg, err, c.alg)
			}
			cr := credentials(t, req, c.header)
			if cr.Username != "acct" || cr.URI != "sip:+4930123@198.51.100.7" || !strings.EqualFold(orMD5(cr.Algorithm), c.alg) {
				t.Fatalf("credentials %+v", cr)
			}
		})
	}
}

func orMD5(a string) string {
	if a == "" {
		return "MD5"
	}
	return a
}

func TestAuthorizeReplacesOldCredentials(t *testing.T) {
	req := request(sip.REGISTER, "sip:carrier.example")
	cr := &config.Credentials{Username: "a", Password: "b"}
	for i := 0; i < 3; i++ {
		if _, err := authorize(req, challenged(401, `Digest realm="r", nonce="n`+string(rune('0'+i))+`"`), cr); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(req.GetHeaders("Authorization")); n != 1 {
		t.Fatalf("%d Authorization headers, want 1", n)
	}
}

func TestGrantedExpiry(t *testing.T) {
	req := request(sip.REGISTER, "sip:carrier.test")
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "acct", Host: "203.0.113.1", Port: 5060}})
	cases := []struct {
		contacts []string
		expires  string
		want     int
	}{
		{[]string{"<sip:acct@203.0.113.1:5060>;expires=120"}, "", 120},
		{[]string{"<sip:acct@192.0.2.9:5060>;expires=30", "<sip:acct@203.0.113.1:5060>;expires=90"}, "3600", 90}, // another binding first
		{[]string{"<sip:acct@192.0.2.9:5060>;expires=30"}, "600", 600},
		{nil, "", 300},
		{[]string{"<sip:acct@203.0.113.1:5060>;expires=bogus"}, "45", 45},
		{nil, "0", 0},
	}
	for i, c := range cases {
		res := sip.NewResponse(200, "OK")
		for _, ct := range c.contacts {
			var h sip.ContactHeader
			if _, err := sip.ParseAddressValue(ct, &h.Address, &h.Params); err != nil {
				t.Fatal(err)
			}
			res.AppendHeader(&h)
		}
		if c.expires != "" {
			res.AppendHeader(sip.NewHeader("Expires", c.expires))
		}
		if got := grantedExpiry(req, res, 300); got != c.want {
			t.Errorf("case %d: %d, want %d", i, got, c.want)
		}
	}
}
