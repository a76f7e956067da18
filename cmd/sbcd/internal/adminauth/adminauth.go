// Package adminauth guards sbcd's admin API and dashboard, wrapped around
// the whole admin handler so that an endpoint added later is covered
// without anyone remembering to: every method but GET and HEAD is a write
// action (unban, reload, drain, ...) and needs the bearer token on any
// address; reads need it too unless the listener is loopback. It knows
// nothing of the endpoints themselves but which reads are public (the
// dashboard's page, which holds no data, and /healthz for probes).
package adminauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

// Policy says who may do what.
type Policy struct {
	// Token is the bearer token; "" when none is configured, and then
	// every write is refused.
	Token string
	// Loopback: the listener is on a loopback address, so reads need no
	// token (only local processes reach it).
	Loopback bool
	// Public reports reads served without a token on any address.
	Public func(path string) bool
}

// Wrap serves next behind p.
func Wrap(next http.Handler, p Policy) http.Handler {
	want := sha256.Sum256([]byte(p.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A web page elsewhere can point a DNS name at 127.0.0.1 and read
		// a loopback API through the browser (DNS rebinding): on loopback
		// only loopback names are served.
		if p.Loopback && !loopbackHost(r.Host) {
			http.Error(w, "the admin API on loopback answers only to a loopback host name", http.StatusForbidden)
			return
		}
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		if read && (p.Loopback || p.Public != nil && p.Public(r.URL.Path)) {
			next.ServeHTTP(w, r)
			return
		}
		if p.Token == "" {
			http.Error(w, "write actions need a token: set admin.token or admin.token_file", http.StatusForbidden)
			return
		}
		got, ok := bearer(r)
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sbcd admin"`)
			http.Error(w, "missing or wrong token (Authorization: Bearer TOKEN)", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer is the token of an "Authorization: Bearer TOKEN" header.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// loopbackHost reports whether a Host header names this machine by a
// loopback address or "localhost".
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
