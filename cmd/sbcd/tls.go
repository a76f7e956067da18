package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/sbc"
)

// reloadOnHUP re-reads the config file (reload.go) and every realm's TLS
// certificate and key on SIGHUP until ctx ends. The realms also poll
// their certificate files (tls.reload_interval); SIGHUP is for "now". A
// config or a pair that fails to load is logged and what runs stays in
// service.
func reloadOnHUP(ctx context.Context, rl *reloader, s *sbc.SBC, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				// systemd (Type=notify) holds `systemctl reload` until READY=1.
				_ = sdNotify("RELOADING=1")
				res := rl.reload() // logs its result
				status := "config reloaded"
				if !res.Applied {
					status = "config reload refused: " + res.Error
				}
				_ = sdNotify("READY=1\nSTATUS=" + status)
				if err := s.ReloadTLS(); err != nil {
					log.Error("SIGHUP: TLS reload failed", "error", err)
				} else {
					log.Info("SIGHUP: TLS certificates reloaded")
				}
			}
		}
	}()
}

// sayWhatSIGTERMDoes logs, at start, what a stop will do to the calls.
func sayWhatSIGTERMDoes(cfg *config.Config, log *slog.Logger) {
	if cfg.Persistence() == nil {
		log.Warn("no state_dir or ha: SIGTERM ends every call with BYE; set state_dir to keep calls across a restart")
		return
	}
	log.Info("calls are kept: SIGTERM stops sbcd without BYE and the next start restores them (sbcctl drain ends them first)")
}
