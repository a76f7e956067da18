package sbc_test

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"go.uber.org/goleak"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/sbc"
)

// New that fails after its first realm (a realm whose TLS CA cannot be
// read, a trunk in an unknown realm) leaves no goroutine behind: no record
// writers, no guard sweep, no sipgo user agent of the realms it built.
func TestNewFailureLeaksNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func(*config.Config)
	}{
		{"realm", func(c *config.Config) { c.Realms[1].TLS = &config.RealmTLS{ServerCA: "/nonexistent/ca.pem"} }},
		{"trunk", func(c *config.Config) { c.Trunks[0].Realm = "nowhere" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			cfg, err := config.Parse(fmt.Appendf(nil, `
realms:
  - {name: carrier, listen: "127.0.0.1:%d"}
  - {name: enterprise, listen: "127.0.0.1:%d"}
media: {enabled: false} # New must fail on the mangled config before any media exists
trunks:
  - {name: pbx, realm: enterprise, targets: ["127.0.0.1:5999"]}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["127.0.0.1:5998"]}
`, freePort(t), freePort(t)))
			if err != nil {
				t.Fatal(err)
			}
			tc.mangle(cfg)
			s, err := sbc.New(cfg, sbc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: newMemStore()})
			if err == nil {
				t.Fatalf("New succeeded on a broken config: %v", s)
			}
		})
	}
}
