package config

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Admin is the HTTP admin API and the dashboard:
//
//	admin:
//	  listen: 127.0.0.1:8080   # loopback by default
//	  token_file: /etc/edgesbc/admin.token   # or token: "..." inline
//	  tls_cert: /etc/edgesbc/admin.crt       # with tls_key: HTTPS
//	  tls_key: /etc/edgesbc/admin.key
//	  history_interval: 10s   # the dashboard's charts: one point per interval, the last hour kept
//
// On loopback, reads need nothing; on any other address everything but
// the dashboard's page and /healthz needs the token, and the listener
// must be TLS. Write actions (every method but GET and HEAD) need the
// token on any address, so with no token they are refused.
type Admin struct {
	Listen string `yaml:"listen"`
	// Token is the bearer token (Authorization: Bearer TOKEN). TokenFile
	// holds it instead (its first line), so the config can be world
	// readable; at most one of the two.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// TLSCert and TLSKey are PEM files; set both to serve HTTPS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// HistoryInterval is the time between the samples behind the
	// dashboard's charts (GET /api/v1/history); an hour of them is kept.
	HistoryInterval Duration `yaml:"history_interval"`
}

// HistoryPoints is how many samples make the last hour.
func (a Admin) HistoryPoints() int { return int(time.Hour / a.HistoryInterval.Std()) }

func (a *Admin) applyDefaults() {
	if a.Listen == "" {
		a.Listen = "127.0.0.1:8080"
	}
	if a.HistoryInterval == 0 {
		a.HistoryInterval = Duration(10 * time.Second)
	}
}

// MinAdminToken is the shortest token accepted, a floor against "admin"
// and typos; make a real one with openssl rand -hex 16 (32 characters,
// 128 bits).
const MinAdminToken = 16

// Loopback reports whether the admin API listens on a loopback address
// only (valid after Validate).
func (a Admin) Loopback() bool {
	ap, err := netip.ParseAddrPort(a.Listen)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// TLS reports whether the admin API serves HTTPS.
func (a Admin) TLS() bool { return a.TLSCert != "" }

// ReadToken is the token from token or token_file ("" when neither is
// set). sbcd reads it at start; Validate reads it too, so -check-config
// catches a missing or empty file.
func (a Admin) ReadToken() (string, error) {
	if a.TokenFile == "" {
		return a.Token, nil
	}
	b, err := os.ReadFile(a.TokenFile)
	if err != nil {
		return "", keyErr("admin.token_file", "%v", err)
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(tok), nil
}

func (a Admin) validate() error {
	ap, err := netip.ParseAddrPort(a.Listen)
	if err != nil {
		return keyErr("admin.listen", "%q is not ip:port (%v)", a.Listen, err)
	}
	if d := a.HistoryInterval.Std(); d < time.Second || d > time.Minute {
		return keyErr("admin.history_interval", "must be between 1s and 1m")
	}
	if a.Token != "" && a.TokenFile != "" {
		return keyErr("admin.token", "set token or token_file, not both")
	}
	tok, err := a.ReadToken()
	if err != nil {
		return err
	}
	key := "admin.token"
	if a.TokenFile != "" {
		key = "admin.token_file"
	}
	if a.TokenFile != "" && tok == "" {
		return keyErr(key, "%s holds no token", a.TokenFile)
	}
	if tok != "" && len(tok) < MinAdminToken {
		return keyErr(key, "the token is %d characters, at least %d are needed", len(tok), MinAdminToken)
	}
	if tok != "" && strings.ContainsAny(tok, " \t\r\n") {
		return keyErr(key, "the token has white space in it")
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		if a.TLSKey == "" {
			return keyErr("admin.tls_key", "tls_cert is set, tls_key is not")
		}
		return keyErr("admin.tls_cert", "tls_key is set, tls_cert is not")
	}
	if a.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(a.TLSCert, a.TLSKey); err != nil {
			return keyErr("admin.tls_cert", "%v", err)
		}
	}
	if ap.Addr().Unmap().IsLoopback() {
		return nil
	}
	// Anyone who reaches a non-loopback address can read every call and
	// lift bans: refuse to start without both.
	if tok == "" {
		return keyErr("admin.token", "admin.listen %s is not loopback: set token or token_file (and tls_cert, tls_key)", ap)
	}
	if a.TLSCert == "" {
		return keyErr("admin.tls_cert", "admin.listen %s is not loopback: set tls_cert and tls_key", ap)
	}
	return nil
}

// String hides the token, so a logged config never shows it.
func (a Admin) String() string {
	return fmt.Sprintf("{listen %s token %t tls %t}", a.Listen, a.Token != "" || a.TokenFile != "", a.TLS())
}
