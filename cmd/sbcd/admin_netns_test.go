package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/ci"
	"github.com/edgesbc/edgesbc/internal/labns"
	"github.com/edgesbc/edgesbc/internal/testpki"
)

// TestPrivilegedAdminOffLoopback runs sbcd in a private network namespace
// with its admin API on a non-loopback address (192.0.2.50, token and
// TLS): every read needs the token but the dashboard's page and /healthz;
// plain HTTP gets nothing; and the page, loaded by headless Chromium in
// the namespace, shows no data and asks for the token.
func TestPrivilegedAdminOffLoopback(t *testing.T) {
	ci.Root(t, "a network namespace with a non-loopback address")
	ci.Require(t, "ip", "chromium")
	ns := fmt.Sprintf("sbcd-admin-%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip("-n", ns, "link", "set", "lo", "up")
	ip("-n", ns, "link", "add", "adm0", "type", "veth", "peer", "name", "adm1") // both ends stay in ns
	ip("-n", ns, "addr", "add", "192.0.2.50/24", "dev", "adm0")
	ip("-n", ns, "link", "set", "adm0", "up")
	ip("-n", ns, "link", "set", "adm1", "up")

	const admin = "192.0.2.50:8443"
	ca := testpki.NewCA(t, "admin-ca")
	pair := ca.Issue("", "sbc-admin", "192.0.2.50")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sbcd.yaml")
	y := fmt.Sprintf(`
realms: [{name: carrier, listen: "127.0.0.1:5060", media: {ports: 40000-40099}}]
media: {datapath: userspace}
admin: {listen: %q, token: %q, tls_cert: %q, tls_key: %q}
`, admin, testToken, pair.CertFile, pair.KeyFile)
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	sbcd := startProc(t, "ip", "netns", "exec", ns, sbcdBin, "-config", cfg)

	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := labns.Do(ns, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	https := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: dial, DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: ca.Pool},
	}}
	get := func(scheme, path, tok string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, scheme+"://"+admin+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		c := https
		if scheme == "http" {
			c = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: dial}}
		}
		res, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), nil
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _, _ := get("https", "/healthz", ""); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin API not up on %s:\n%s", admin, sbcd)
		}
	}
	for _, c := range []struct {
		path, tok string
		want      int
	}{
		{"/api/v1/calls", "", 401},
		{"/api/v1/calls", "wrong-token-0123456789", 401},
		{"/metrics", "", 401},
		{"/api/v1/history", "", 401},
		{"/debug/pprof/", "", 401},
		{"/api/v1/calls", testToken, 200},
		{"/metrics", testToken, 200},
		{"/", "", 200},
		{"/dashboard/app.js", "", 200},
		{"/healthz", "", 200},
	} {
		code, body, err := get("https", c.path, c.tok)
		if err != nil || code != c.want {
			t.Errorf("GET %s token %q: %d %v, want %d\n%.200s", c.path, c.tok, code, err, c.want, body)
		}
	}
	if code, _, err := get("http", "/healthz", ""); err == nil && code < 400 {
		t.Errorf("plain HTTP on the TLS admin API: %d", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	chrome := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "chromium", "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-dev-shm-usage", "--no-first-run", "--user-data-dir="+t.TempDir(), "--ignore-certificate-errors",
		"--virtual-time-budget=3000", "--dump-dom", "https://"+admin+"/")
	dom, err := chrome.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	page := string(dom)
	if !strings.Contains(page, `<form id="token-form">`) || !strings.Contains(page, "the admin API wants a token") {
		t.Errorf("the page off loopback does not ask for the token:\n%s", page)
	}
	if strings.Contains(page, "data-call-id") || strings.Contains(page, "updated ") {
		t.Errorf("the page shows data without the token:\n%s", page)
	}
}
