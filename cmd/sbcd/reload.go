package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/api"
	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/sbc"
)

// reloader re-reads the config file (SIGHUP, POST /api/v1/config/reload)
// and puts its live keys in service for new calls (config.Diff says which
// keys are live). A file that does not load, or changes a key that needs
// a restart, is refused with the key named and the running config stays.
type reloader struct {
	path  string // "" : the embedded default, which cannot change
	s     *sbc.SBC
	media *mediarelay.Anchor // nil: media not anchored
	level *slog.LevelVar
	log   *slog.Logger

	results *prometheus.CounterVec // result: ok, refused
	success prometheus.Gauge       // 1 when the last reload was applied
	info    *prometheus.GaugeVec   // hash of the file in service

	mu     sync.Mutex // serializes reloads; guards everything below
	cur    *config.Config
	status api.ConfigStatus
}

func newReloader(path string, raw []byte, cfg *config.Config, s *sbc.SBC, media *mediarelay.Anchor, level *slog.LevelVar, log *slog.Logger, reg prometheus.Registerer) *reloader {
	rl := &reloader{path: path, s: s, media: media, level: level, log: log, cur: cfg}
	rl.status = api.ConfigStatus{Path: path, Hash: config.Hash(raw), LoadedAt: time.Now()}
	rl.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sbc_config_reloads_total", Help: "Config reloads (SIGHUP, sbcctl reload) by result: ok, refused.",
	}, []string{"result"})
	rl.success = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sbc_config_last_reload_success", Help: "1 when the last config reload was applied (or none was tried), 0 when it was refused.",
	})
	rl.info = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sbc_config_info", Help: "1, labelled with the SHA-256 of the config file in service.",
	}, []string{"hash"})
	reg.MustRegister(rl.results, rl.success, rl.info)
	rl.results.WithLabelValues("ok")
	rl.results.WithLabelValues("refused")
	rl.success.Set(1)
	rl.info.WithLabelValues(rl.status.Hash).Set(1)
	return rl
}

// reload tries the file once; the answer says what changed and why it was
// refused.
func (rl *reloader) reload() api.Reload {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	changed, hash, err := rl.apply()
	rl.status.LastReload = time.Now()
	out := api.Reload{Changed: changed}
	if err != nil {
		rl.status.ReloadFailures++
		rl.status.LastResult, rl.status.LastError = "refused", err.Error()
		rl.results.WithLabelValues("refused").Inc()
		rl.success.Set(0)
		rl.log.Error("config reload refused: the running config stays", "config", orDefault(rl.path), "error", err)
		out.Error = err.Error()
	} else {
		rl.status.Reloads++
		rl.status.LastResult, rl.status.LastError = "ok", ""
		rl.results.WithLabelValues("ok").Inc()
		rl.success.Set(1)
		if hash != rl.status.Hash {
			rl.info.Reset()
			rl.info.WithLabelValues(hash).Set(1)
			rl.status.Hash, rl.status.LoadedAt = hash, rl.status.LastReload
		}
		rl.log.Info("config reloaded: new calls follow it", "config", rl.path, "hash", hash, "changed", changed)
		out.Applied = true
	}
	out.Config = rl.status
	return out
}

// apply loads, checks and swaps; on error nothing has changed.
func (rl *reloader) apply() (changed []string, hash string, err error) {
	if rl.path == "" {
		return nil, "", errors.New("sbcd runs the embedded default config: there is no file to reload (start it with -config)")
	}
	raw, err := os.ReadFile(rl.path)
	if err != nil {
		return nil, "", fmt.Errorf("read config %s: %w", rl.path, err)
	}
	next, err := config.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", rl.path, err)
	}
	d := config.Diff(rl.cur, next)
	for _, c := range d {
		changed = append(changed, c.Key)
	}
	if err := config.RestartNeeded(d); err != nil {
		return changed, "", fmt.Errorf("%s: %w", rl.path, err)
	}
	srtp := make([]mediarelay.SRTPPolicy, len(next.Realms))
	for i, r := range next.Realms {
		if srtp[i], err = mediarelay.NewSRTPPolicy(r.Media.SRTP.Mode, r.Media.SRTP.Suites); err != nil {
			return changed, "", fmt.Errorf("%s: realms %s media srtp: %w", rl.path, r.Name, err)
		}
	}
	// Built and checked; from here nothing fails (the realms are the
	// running ones: RestartNeeded saw them unchanged).
	if err := rl.s.Reload(next); err != nil {
		return changed, "", fmt.Errorf("%s: %w", rl.path, err)
	}
	if rl.media != nil {
		for i, r := range next.Realms {
			if err := rl.media.SetRealmPolicy(r.Name, r.Media.Codecs, srtp[i]); err != nil {
				rl.log.Error("reload: media policy", "realm", r.Name, "error", err)
			}
		}
	}
	setLevel(rl.level, next.Log.Level)
	rl.cur = next
	return changed, config.Hash(raw), nil
}

func (rl *reloader) configStatus() api.ConfigStatus {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.status
}

// admin adds GET /api/v1/config and POST /api/v1/config/reload to mux.
// The POST changes sbcd: it sits behind the same handler chain as every
// admin endpoint, where the dashboard's admin token check goes.
func (rl *reloader) admin(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/config", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, rl.configStatus())
	})
	mux.HandleFunc("POST /api/v1/config/reload", func(w http.ResponseWriter, _ *http.Request) {
		res := rl.reload()
		code := http.StatusOK
		if !res.Applied {
			code = http.StatusConflict
		}
		writeJSON(w, code, res)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// setLevel sets the log level by name; a validated config names a good one.
func setLevel(v *slog.LevelVar, name string) {
	var l slog.Level
	if l.UnmarshalText([]byte(name)) == nil {
		v.Set(l)
	}
}

// opsAdmin serves the config and drain endpoints and everything else from
// next (the SBC's admin mux).
func opsAdmin(rl *reloader, d *drainer, next http.Handler) http.Handler {
	mux := http.NewServeMux()
	rl.admin(mux)
	d.admin(mux)
	mux.Handle("/", next)
	return mux
}
