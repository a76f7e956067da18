package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgesbc/edgesbc/sbc"
)

// reloadTLSOnHUP reloads every realm's TLS certificate and key on SIGHUP
// until ctx ends. The realms also poll their files (tls.reload_interval);
// SIGHUP is for "now". A pair that fails to load is logged and the
// previous certificate stays in service.
func reloadTLSOnHUP(ctx context.Context, s *sbc.SBC, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := s.ReloadTLS(); err != nil {
					log.Error("SIGHUP: TLS reload failed", "error", err)
				} else {
					log.Info("SIGHUP: TLS certificates reloaded")
				}
			}
		}
	}()
}
