package adminauth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const token = "0123456789abcdef0123"

// Every method but GET and HEAD is a write and needs the token on any
// address, whatever the path: endpoints the policy has never heard of
// (reload, drain) included. Reads need it only off loopback, but for the
// public paths.
func TestPolicy(t *testing.T) {
	public := func(p string) bool { return p == "/" || p == "/healthz" }
	type req struct {
		method, path, host, auth string
		want                     int
	}
	cases := []struct {
		name string
		p    Policy
		reqs []req
	}{
		{"loopback, no token", Policy{Loopback: true, Public: public}, []req{
			{"GET", "/api/v1/calls", "127.0.0.1:8080", "", 200},
			{"HEAD", "/api/v1/calls", "[::1]:8080", "", 200},
			{"GET", "/api/v1/calls", "localhost:8080", "", 200},
			{"DELETE", "/api/v1/bans/192.0.2.9", "127.0.0.1:8080", "", 403},
			{"POST", "/api/v1/reload", "127.0.0.1:8080", "Bearer " + token, 403},
			{"POST", "/api/v1/drain", "127.0.0.1:8080", "", 403},
			{"GET", "/api/v1/calls", "rebind.example:8080", "", 403},
		}},
		{"loopback with token", Policy{Token: token, Loopback: true, Public: public}, []req{
			{"GET", "/api/v1/calls", "127.0.0.1:8080", "", 200},
			{"DELETE", "/api/v1/bans/192.0.2.9", "127.0.0.1:8080", "", 401},
			{"DELETE", "/api/v1/bans/192.0.2.9", "127.0.0.1:8080", "Bearer wrong-token-0123456789", 401},
			{"DELETE", "/api/v1/bans/192.0.2.9", "127.0.0.1:8080", "Bearer " + token + "x", 401},
			{"DELETE", "/api/v1/bans/192.0.2.9", "127.0.0.1:8080", "Basic " + token, 401},
			{"DELETE", "/api/v1/bans/192.0.2.9", "127.0.0.1:8080", "Bearer " + token, 200},
			{"POST", "/api/v1/reload", "127.0.0.1:8080", "", 401},
			{"POST", "/api/v1/reload", "127.0.0.1:8080", "bearer " + token, 200},
			{"PUT", "/api/v1/drain", "127.0.0.1:8080", "", 401},
			{"PATCH", "/anything/new", "127.0.0.1:8080", "", 401},
			{"OPTIONS", "/api/v1/calls", "127.0.0.1:8080", "", 401},
			{"POST", "/", "127.0.0.1:8080", "", 401}, // public is for reads only
			{"DELETE", "/api/v1/bans/192.0.2.9", "evil.example", "Bearer " + token, 403},
		}},
		{"management address", Policy{Token: token, Public: public}, []req{
			{"GET", "/api/v1/calls", "192.0.2.2:8443", "", 401},
			{"GET", "/metrics", "sbc.example:8443", "Bearer nope-nope-nope-nope", 401},
			{"GET", "/api/v1/calls", "sbc.example:8443", "Bearer " + token, 200},
			{"GET", "/", "sbc.example:8443", "", 200},
			{"GET", "/healthz", "192.0.2.2:8443", "", 200},
			{"DELETE", "/api/v1/bans/192.0.2.9", "192.0.2.2:8443", "", 401},
			{"POST", "/api/v1/drain", "192.0.2.2:8443", "Bearer " + token, 200},
		}},
	}
	for _, c := range cases {
		var reached int
		h := Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached++ }), c.p)
		for _, q := range c.reqs {
			r := httptest.NewRequest(q.method, "http://"+q.host+q.path, nil)
			if q.auth != "" {
				r.Header.Set("Authorization", q.auth)
			}
			before := reached
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != q.want {
				t.Errorf("%s: %s %s host %s auth %q: %d, want %d (%s)", c.name, q.method, q.path, q.host, q.auth, w.Code, q.want, strings.TrimSpace(w.Body.String()))
			}
			if passed := reached > before; passed != (q.want == 200) {
				t.Errorf("%s: %s %s: handler reached %t with status %d", c.name, q.method, q.path, passed, w.Code)
			}
			if w.Code == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s: %s %s: 401 without WWW-Authenticate", c.name, q.method, q.path)
			}
		}
	}
}
