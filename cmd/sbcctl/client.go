package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// tokenEnv holds the admin token when -token-file is not given.
const tokenEnv = "SBCCTL_TOKEN"

// newClient is the HTTP client for the admin API: it sends the admin
// token (from -token-file, else $SBCCTL_TOKEN) as a bearer token on every
// request, and trusts caFile's certificates for https (the system roots
// when empty).
func newClient(tokenFile, caFile string) (*http.Client, error) {
	tok := os.Getenv(tokenEnv)
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("-token-file: %w", err)
		}
		tok, _, _ = strings.Cut(string(b), "\n")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("-cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("-cacert: no PEM certificate in " + caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: bearer{strings.TrimSpace(tok), tr}}, nil
}

// bearer adds the token to each request ("" adds nothing).
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.next.RoundTrip(r)
}
