package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/internal/testpki"
)

// The admin API's token and TLS: loopback needs neither; any other
// address needs both, and a bad token or file is refused naming the key.
func TestAdminTokenAndTLS(t *testing.T) {
	ca := testpki.NewCA(t, "admin-ca")
	pair := ca.Issue("", "admin", "192.0.2.2")
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokFile, []byte("0123456789abcdef0123\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.token")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tls := " tls_cert: " + pair.CertFile + ", tls_key: " + pair.KeyFile
	admin := func(body string) string {
		return strings.Replace(baseYAML, "admin:\n  listen: 127.0.0.1:8080\n", "admin: {"+body+"}\n", 1)
	}

	good := []struct {
		name, yaml, token string
		loopback, https   bool
	}{
		{"default", baseYAML, "", true, false},
		{"loopback with token", admin(`listen: "127.0.0.1:8080", token: 0123456789abcdef`), "0123456789abcdef", true, false},
		{"ipv6 loopback", admin(`listen: "[::1]:8080"`), "", true, false},
		{"token file's first line", admin(`listen: "127.0.0.1:8080", token_file: ` + tokFile), "0123456789abcdef0123", true, false},
		{"management address with token and tls", admin(`listen: "192.0.2.2:8443", token_file: ` + tokFile + `,` + tls), "0123456789abcdef0123", false, true},
	}
	for _, c := range good {
		cfg, err := config.Parse([]byte(c.yaml))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		tok, err := cfg.Admin.ReadToken()
		if err != nil || tok != c.token || cfg.Admin.Loopback() != c.loopback || cfg.Admin.TLS() != c.https {
			t.Errorf("%s: token %q (%v) loopback %t tls %t, want %q %t %t", c.name, tok, err,
				cfg.Admin.Loopback(), cfg.Admin.TLS(), c.token, c.loopback, c.https)
		}
		if strings.Contains(cfg.Admin.String(), "0123456789") {
			t.Errorf("%s: Admin.String shows the token: %s", c.name, cfg.Admin.String())
		}
	}

	for _, c := range []struct {
		yaml   string
		points int
	}{{baseYAML, 360}, {admin(`listen: "127.0.0.1:8080", history_interval: 1s`), 3600}, {admin(`listen: "127.0.0.1:8080", history_interval: 1m`), 60}} {
		cfg, err := config.Parse([]byte(c.yaml))
		if err != nil {
			t.Errorf("history: %v", err)
		} else if n := cfg.Admin.HistoryPoints(); n != c.points {
			t.Errorf("history: %d points, want %d", n, c.points)
		}
	}

	bad := []struct {
		name string
		yaml string
		want []string
	}{
		{"any address, nothing", admin(`listen: "0.0.0.0:8080"`), []string{"admin.token", "not loopback"}},
		{"management address, token only", admin(`listen: "192.0.2.2:8443", token: 0123456789abcdef`), []string{"admin.tls_cert", "not loopback"}},
		{"management address, tls only", admin(`listen: "192.0.2.2:8443",` + tls), []string{"admin.token", "not loopback"}},
		{"ipv6 any, tls only", admin(`listen: "[::]:8443",` + tls), []string{"admin.token", "not loopback"}},
		{"short token", admin(`listen: "127.0.0.1:8080", token: short`), []string{"admin.token", "at least 16"}},
		{"token with space", admin(`listen: "127.0.0.1:8080", token: "0123456789 abcdef"`), []string{"admin.token", "white space"}},
		{"both token and file", admin(`listen: "127.0.0.1:8080", token: 0123456789abcdef, token_file: ` + tokFile), []string{"admin.token", "not both"}},
		{"missing token file", admin(`listen: "127.0.0.1:8080", token_file: /nonexistent/admin.token`), []string{"admin.token_file", "no such file"}},
		{"empty token file", admin(`listen: "127.0.0.1:8080", token_file: ` + empty), []string{"admin.token_file", "holds no token"}},
		{"cert without key", admin(`listen: "127.0.0.1:8080", tls_cert: ` + pair.CertFile), []string{"admin.tls_key", "tls_key is not"}},
		{"key without cert", admin(`listen: "127.0.0.1:8080", tls_key: ` + pair.KeyFile), []string{"admin.tls_cert", "tls_cert is not"}},
		{"unreadable cert", admin(`listen: "127.0.0.1:8080", tls_cert: /nonexistent.pem, tls_key: ` + pair.KeyFile), []string{"admin.tls_cert"}},
		{"history too fine", admin(`listen: "127.0.0.1:8080", history_interval: 500ms`), []string{"admin.history_interval", "between 1s and 1m"}},
		{"history too coarse", admin(`listen: "127.0.0.1:8080", history_interval: 2m`), []string{"admin.history_interval"}},
		{"unknown key", admin(`listen: "127.0.0.1:8080", password: x`), []string{"password"}},
	}
	for _, c := range bad {
		_, err := config.Parse([]byte(c.yaml))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !errors.Is(err, config.ErrInvalid) {
			t.Errorf("%s: %v does not wrap ErrInvalid", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", c.name, err, w)
			}
		}
	}
}
