package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/syncbuf"
	"github.com/edgesbc/edgesbc/internal/testpki"
)

// Every write on the admin API needs the token, on loopback too: the ban
// endpoint and the reload and drain endpoints (whether this build has
// them or not, the policy answers first), and any method but GET or HEAD.
// With the token the request reaches its handler. Reads on loopback need
// none, but only under a loopback host name (DNS rebinding).
func TestAdminWritesNeedToken(t *testing.T) {
	p := startSBCD(t, "", false)
	for _, w := range []struct{ method, path string }{
		{http.MethodDelete, "/api/v1/bans/192.0.2.77"},
		{http.MethodPost, "/api/v1/reload"},
		{http.MethodPost, "/api/v1/config/reload"},
		{http.MethodPut, "/api/v1/calls"},
		{http.MethodPatch, "/"},
	} {
		for _, tok := range []string{"", "wrong-token-0123456789", testToken + "x"} {
			if code, body := p.do(w.method, w.path, tok); code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d %q, want 401", w.method, w.path, tok, code, body)
			}
		}
		if code, body := p.do(w.method, w.path, testToken); code == http.StatusUnauthorized || code == http.StatusForbidden {
			t.Errorf("%s %s with the token: %d %q, want it past the policy", w.method, w.path, code, body)
		}
	}
	// Past the policy, the ban handler itself answers.
	if code, body := p.do(http.MethodDelete, "/api/v1/bans/192.0.2.77", testToken); code != http.StatusNotFound || !strings.Contains(body, "not banned") {
		t.Errorf("DELETE a ban that is not there, with the token: %d %q, want 404 not banned", code, body)
	}
	if code, body := p.do(http.MethodGet, "/api/v1/calls", ""); code != 200 || !strings.HasPrefix(body, "[") {
		t.Errorf("GET /api/v1/calls on loopback without a token: %d %q", code, body)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.admin+"/api/v1/calls", nil)
	req.Host = "rebound.example.com"
	if res, err := client.Do(req); err != nil || res.StatusCode != http.StatusForbidden {
		t.Errorf("GET with a foreign Host header on loopback: %v %v, want 403", res, err)
	} else {
		res.Body.Close()
	}
	// Last, as it ends sbcd: a drain needs the token too, and with it
	// sbcd (no call up) drains and exits.
	for _, tok := range []string{"", "wrong-token-0123456789", testToken + "x"} {
		if code, body := p.do(http.MethodPost, "/api/v1/drain", tok); code != http.StatusUnauthorized {
			t.Errorf("POST /api/v1/drain with token %q: %d %q, want 401", tok, code, body)
		}
	}
	if code, body := p.do(http.MethodPost, "/api/v1/drain", testToken); code != http.StatusAccepted {
		t.Errorf("POST /api/v1/drain with the token: %d %q, want 202", code, body)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Error("sbcd still running 5 s after a drain with no call up")
	}

	// No token configured: every write is refused, saying how to allow it.
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	sip := freePort(t, "udp")
	q := runSBCD(t, fmt.Sprintf(`
realms: [{name: carrier, listen: "127.0.0.1:%d", media: {ports: 44000-44099}}]
media: {datapath: userspace}
admin: {listen: %q}
`, sip, admin), admin, false)
	if code, body := q.do(http.MethodDelete, "/api/v1/bans/192.0.2.77", testToken); code != http.StatusForbidden || !strings.Contains(body, "admin.token") {
		t.Errorf("DELETE without a configured token: %d %q, want 403 naming admin.token", code, body)
	}
	if !strings.Contains(q.out.String(), `writes="refused: no admin token configured"`) {
		t.Errorf("sbcd does not log that writes are refused:\n%s", tailLines(q.out.String(), 10))
	}
}

// With tls_cert and tls_key the admin API (and the dashboard) is HTTPS
// only; sbcctl reaches it with -cacert and -token-file.
func TestAdminTLS(t *testing.T) {
	ca := testpki.NewCA(t, "admin-ca")
	pair := ca.Issue("", "admin", "127.0.0.1")
	tokFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	sip := freePort(t, "udp")
	y := fmt.Sprintf(`
realms: [{name: carrier, listen: "127.0.0.1:%d", media: {ports: 44100-44199}}]
media: {datapath: userspace}
admin: {listen: %q, token_file: %q, tls_cert: %q, tls_key: %q}
`, sip, admin, tokFile, pair.CertFile, pair.KeyFile)
	cfg := filepath.Join(t.TempDir(), "sbcd.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sbcdBin, "-config", cfg)
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	pem, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	https := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	var res *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if res, err = https.Get("https://" + admin + "/healthz"); err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin API not up over https: %v\n%s", err, out)
		}
	}
	if res.StatusCode != 200 {
		t.Fatalf("GET /healthz over https: %s", res.Status)
	}
	if res, err := client.Get("http://" + admin + "/healthz"); err == nil {
		if res.StatusCode < 400 {
			t.Errorf("plain HTTP on a TLS admin API: %s", res.Status)
		}
		res.Body.Close()
	}
	ctl := buildSbcctl(t)
	run := func(args ...string) (string, error) {
		c := exec.Command(ctl, append([]string{"-admin", "https://" + admin, "-cacert", ca.File}, args...)...)
		c.Env = append(os.Environ(), "SBCCTL_TOKEN=")
		b, err := c.CombinedOutput()
		return string(b), err
	}
	if o, err := run("-token-file", tokFile, "calls"); err != nil || !strings.Contains(o, "0 calls") {
		t.Errorf("sbcctl calls over https: %v\n%s", err, o)
	}
	if o, err := run("unban", "192.0.2.5"); err == nil || !strings.Contains(o, "401") {
		t.Errorf("sbcctl unban over https without the token: %v\n%s", err, o)
	}
	if o, err := run("-token-file", tokFile, "unban", "192.0.2.5"); err == nil || !strings.Contains(o, "404") {
		t.Errorf("sbcctl unban over https with the token, of an address not banned: %v, want 404\n%s", err, o)
	}
}

// -check-config refuses an admin API on a non-loopback address without
// both a token and TLS, naming the key, and accepts it with both.
func TestCheckConfigAdminAddress(t *testing.T) {
	ca := testpki.NewCA(t, "admin-ca")
	pair := ca.Issue("", "admin", "192.0.2.2")
	base := `realms: [{name: carrier, listen: "127.0.0.1:5060"}]
admin: {listen: "%s"%s}
`
	tlsKeys := fmt.Sprintf(", tls_cert: %q, tls_key: %q", pair.CertFile, pair.KeyFile)
	for _, c := range []struct {
		name, listen, extra, want string
		ok                        bool
	}{
		{"loopback", "127.0.0.1:8080", "", "ok", true},
		{"any address", "0.0.0.0:8080", "", "admin.token", false},
		{"management address, token only", "192.0.2.2:8443", ", token: " + testToken, "admin.tls_cert", false},
		{"management address, TLS only", "192.0.2.2:8443", tlsKeys, "admin.token", false},
		{"management address, token and TLS", "192.0.2.2:8443", ", token: " + testToken + tlsKeys, "ok", true},
	} {
		f := filepath.Join(t.TempDir(), "sbcd.yaml")
		if err := os.WriteFile(f, []byte(fmt.Sprintf(base, c.listen, c.extra)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sbcdBin, "-check-config", f).CombinedOutput()
		if (err == nil) != c.ok || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: -check-config: %v\n%s\nwant ok=%t and %q", c.name, err, out, c.ok, c.want)
		}
	}
}
