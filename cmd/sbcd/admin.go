package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/edgesbc/edgesbc/cmd/sbcd/internal/adminauth"
	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/dashboard"
)

// serveAdmin serves h on the admin address until the returned stop is
// called: behind the token policy (adminauth wraps all of h, so every
// write endpoint, today's and tomorrow's, needs the token), over TLS when
// tls_cert is set. testHooks (nil for none) wraps the result: the stall
// hooks, which exist only under EDGESBC_TEST_HOOKS=1, stay outside the
// policy so the lab's shipped configs need no token to drive them.
func serveAdmin(a config.Admin, h http.Handler, log *slog.Logger, testHooks func(http.Handler) http.Handler) (func(), error) {
	tok, err := a.ReadToken()
	if err != nil {
		return nil, err
	}
	h = adminauth.Wrap(h, adminauth.Policy{Token: tok, Loopback: a.Loopback(), Public: publicPath})
	if testHooks != nil {
		h = testHooks(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	ln, err := net.Listen("tcp", a.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin API listen %s: %w", a.Listen, err)
	}
	if a.TLS() {
		cert, err := tls.LoadX509KeyPair(a.TLSCert, a.TLSKey)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("admin tls_cert: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}})
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin API stopped", "error", err)
		}
	}()
	log.Info("admin API", "listen", a.Listen, "tls", a.TLS(), "token", tok != "", "writes", writesNote(tok))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

func writesNote(tok string) string {
	if tok == "" {
		return "refused: no admin token configured"
	}
	return "with the token"
}

// publicPath: the reads served without the token on any address: the
// dashboard's page (no data in it) and /healthz for load-balancer probes.
func publicPath(path string) bool { return path == "/healthz" || dashboard.Public(path) }
