package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/internal/testpki"
)

func TestTLSConfig(t *testing.T) {
	ca := testpki.NewCA(t, "cfg-ca")
	pair := ca.Issue("", "sbc", "203.0.113.1")
	other := ca.Issue("", "other", "203.0.113.1")
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	realm := func(transports, block string) string {
		y := strings.Replace(baseYAML, "transports: [udp, tcp]", "transports: ["+transports+"]", 1)
		if block != "" {
			y = strings.Replace(y, "  - name: enterprise", "    tls: {"+block+"}\n  - name: enterprise", 1)
		}
		return y
	}
	files := fmt.Sprintf("cert: %s, key: %s", pair.CertFile, pair.KeyFile)

	c, err := config.Parse([]byte(realm("udp, tls", files)))
	if err != nil {
		t.Fatalf("valid tls realm: %v", err)
	}
	tl := c.Realms[0].TLS
	if tl.Port != 5061 || tl.ClientAuth != "none" || tl.ReloadInterval.Std() != 10*time.Second || tl.HandshakeTimeout.Std() != 5*time.Second || tl.MaxConnections != 1000 {
		t.Errorf("defaults: %+v", tl)
	}
	if got := c.Realms[0].TLSAddrPort().String(); got != "203.0.113.1:5061" {
		t.Errorf("TLSAddrPort %s", got)
	}
	if _, err := config.Parse([]byte(realm("udp, tcp, tls", files+", client_auth: require, client_ca: "+ca.File+", server_ca: "+ca.File+", port: 5071"))); err != nil {
		t.Errorf("full tls block: %v", err)
	}
	if _, err := config.Parse([]byte(realm("udp", "server_ca: "+ca.File))); err != nil {
		t.Errorf("client-only tls block (no listener, no cert): %v", err)
	}

	bad := []struct {
		name string
		yaml string
		want []string
	}{
		{"tls without block", realm("udp, tls", ""), []string{"realms[0].tls", "needs a tls block"}},
		{"listener without cert", realm("tls", "server_ca: "+ca.File), []string{"realms[0].tls.cert", "needs a certificate"}},
		{"cert without key", realm("tls", "cert: "+pair.CertFile), []string{"realms[0].tls.key", "key is not"}},
		{"key without cert", realm("udp", "key: "+pair.KeyFile), []string{"realms[0].tls.cert", "cert is not"}},
		{"missing cert file", realm("tls", "cert: /nonexistent.pem, key: "+pair.KeyFile), []string{"realms[0].tls.cert", "cannot load"}},
		{"key of another cert", realm("tls", "cert: "+pair.CertFile+", key: "+other.KeyFile), []string{"realms[0].tls.cert", "cannot load"}},
		{"bad client_auth", realm("tls", files+", client_auth: maybe"), []string{"realms[0].tls.client_auth", "none, request or require"}},
		{"require without CA", realm("tls", files+", client_auth: require"), []string{"realms[0].tls.client_ca", "require needs"}},
		{"client_ca not PEM", realm("tls", files+", client_ca: "+junk), []string{"realms[0].tls.client_ca", "no PEM certificate"}},
		{"server_ca missing", realm("tls", files+", server_ca: /nonexistent-ca.pem"), []string{"realms[0].tls.server_ca", "read CA file"}},
		{"server_ca and insecure", realm("tls", files+", server_ca: "+ca.File+", insecure_skip_verify_lab_only: true"), []string{"realms[0].tls.insecure_skip_verify_lab_only", "choose one"}},
		{"port clash with tcp", realm("udp, tcp, tls", files+", port: 5060"), []string{"realms[0].tls.port", "already the TCP listener of realms[0].listen"}},
		{"port out of range", realm("tls", files+", port: 70000"), []string{"realms[0].tls.port", "not a port"}},
		{"reload too often", realm("tls", files+", reload_interval: 10ms"), []string{"realms[0].tls.reload_interval", "between 1s and 24h"}},
		{"handshake timeout", realm("tls", files+", handshake_timeout: 2m"), []string{"realms[0].tls.handshake_timeout", "between 100ms and 1m"}},
		{"max connections", realm("tls", files+", max_connections: -1"), []string{"realms[0].tls.max_connections", "between 1 and 100000"}},
		{"unknown key", realm("tls", files+", verify: yes"), []string{"verify"}},
		{"target transport tls parses", strings.Replace(baseYAML, `"198.51.100.10:5060"`, `"198.51.100.10:5061;transport=tls"`, 1), nil},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.yaml))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want ok: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("want an invalid-config error, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
