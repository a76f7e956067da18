package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/cdr"
	"github.com/edgesbc/edgesbc/config"
)

// openCDR opens the call record sinks the cdr section names; nil without
// one.
func openCDR(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*cdr.Writer, error) {
	if cfg.CDR == nil {
		log.Info("call detail records off (no cdr section)")
		return nil, nil
	}
	w, err := cdr.Open(*cfg.CDR, cdr.Options{Logger: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	attrs := []any{}
	if f := cfg.CDR.File; f != nil {
		attrs = append(attrs, "file", f.Path, "fsync", f.Fsync)
	}
	if p := cfg.CDR.Postgres; p != nil {
		attrs = append(attrs, "postgres_table", p.Table, "spool", p.SpoolDir)
	}
	log.Info("call detail records on", attrs...)
	return w, nil
}

// closeCDR flushes the records of the calls the shutdown ended.
func closeCDR(w *cdr.Writer, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		log.Error("call records not all flushed", "error", err)
	}
}
