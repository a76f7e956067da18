package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgesbc/edgesbc/api"
	"github.com/edgesbc/edgesbc/cmd/sbcd/internal/failover"
	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/ha"
	"github.com/edgesbc/edgesbc/sbc"
	"github.com/edgesbc/edgesbc/watchdog"
)

// roleFlag: "sbc" (SIP, media and, with an ha section, Raft) or
// "witness" (Raft only: no SIP, no media; the third voter).
var roleFlag = flag.String("role", "sbc", "sbc, or witness (Raft voter only: no SIP, no media)")

// witnessMain runs sbcd as a witness when -role witness was given and
// reports whether it did (main exits with its status then).
func witnessMain(cfgPath, check string) bool {
	switch *roleFlag {
	case "sbc":
		return false
	case "witness":
	default:
		fmt.Fprintf(os.Stderr, "sbcd: -role %q: want sbc or witness\n", *roleFlag)
		os.Exit(2)
	}
	if check != "" {
		if _, err := config.LoadWitness(check); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("%s: ok (witness)\n", check)
		os.Exit(0)
	}
	if err := runWitness(cfgPath); err != nil {
		fmt.Fprintln(os.Stderr, "sbcd:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

func runWitness(path string) error {
	if path == "" {
		return errors.New("-role witness needs -config with an ha section")
	}
	cfg, err := config.LoadWitness(path)
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	watchdog.BoundShutdown(ctx, cfg.ShutdownGrace.Std(), os.Stderr)
	reg := prometheus.NewRegistry()
	n, err := openHA(cfg, log, reg, true)
	if err != nil {
		return err
	}
	defer n.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	stopAdmin, err := serveAdmin(cfg.Admin, haAdmin(n, mux), log, nil)
	if err != nil {
		return err
	}
	defer stopAdmin()
	log.Info("sbcd witness running", "node", cfg.HA.NodeID, "admin", cfg.Admin.Listen)
	<-ctx.Done()
	log.Info("witness shutting down")
	return nil
}

func newLogger(cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	return log
}

// openHA starts this node's Raft voter from the ha section (nil section:
// nil node, no error).
func openHA(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, witness bool) (*ha.Node, error) {
	h := cfg.HA
	if h == nil {
		return nil, nil
	}
	hc := ha.Config{
		NodeID: h.NodeID, Bind: h.Bind, DataDir: h.DataDir, Witness: witness,
		HeartbeatTimeout: h.HeartbeatTimeout.Std(), ElectionTimeout: h.ElectionTimeout.Std(), LeaderLease: h.LeaderLease.Std(),
		Logger: log, Registerer: reg,
	}
	for _, p := range h.Peers {
		hc.Peers = append(hc.Peers, ha.Peer{ID: p.ID, Addr: p.Addr})
	}
	return ha.Open(hc)
}

// openStore opens the ha node when the config asks for one (an ha
// section, or state_dir: nil node otherwise) and sets the SBC options for
// it: the call store, starting fenced, and IP_FREEBIND for listeners on
// VIPs that are not up yet. vips are the pair's VIPs (none on a node
// alone).
func openStore(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, opt *sbc.Options) (n *ha.Node, vips []ha.VIP, err error) {
	p := cfg.Persistence()
	if p == nil {
		return nil, nil, nil
	}
	c := *cfg
	c.HA = p
	if err := os.MkdirAll(p.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("ha data dir: %w", err)
	}
	n, err = openHA(&c, log, reg, false)
	if err != nil {
		return nil, nil, err
	}
	vips = haVIPs(&c)
	opt.Store = n
	opt.Standby = true
	opt.FreeBind = len(vips) > 0
	return n, vips, nil
}

// newFailover ties the B2BUA and the kernel datapath to the node: it
// serves only while this node leads, and in a pair leading also means
// holding the VIPs (failover.Failover). Nil node: nil, no HA.
func newFailover(n *ha.Node, vips []ha.VIP, cfg *config.Config, log *slog.Logger, s *sbc.SBC, served func(), afterRestore func(), fence func(string)) (*failover.Failover, error) {
	if n == nil {
		return nil, nil
	}
	fc := failover.Config{
		Leader: n, Calls: notifyingCalls{s, served}, AfterRestore: afterRestore, Fence: fence, Log: log,
		FollowLog: log.With("component", "ha", "node", cfg.Persistence().NodeID, "vips", len(vips)),
	}
	if len(vips) > 0 {
		fc.VIPs = ha.VIPs(vips)
	}
	return failover.New(fc)
}

// haVIPs are the ha section's VIPs for ha.TakeVIPs / ha.ReleaseVIPs.
func haVIPs(cfg *config.Config) []ha.VIP {
	if cfg.HA == nil {
		return nil
	}
	var vs []ha.VIP
	for _, v := range cfg.HA.VIPs {
		vs = append(vs, ha.VIP{Iface: v.Iface, Prefix: v.Prefix()})
	}
	return vs
}

// haAdmin serves GET /api/v1/ha from the node and everything else from
// next (the SBC's admin mux).
func haAdmin(n *ha.Node, next http.Handler) http.Handler {
	if n == nil {
		return next
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/ha", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(apiHA(n.Status()))
	})
	mux.Handle("/", next)
	return mux
}

// apiHA is the node's status as the admin API's wire type. The peers
// convert directly, so a field added to one side only fails to compile.
func apiHA(s ha.Status) api.HA {
	out := api.HA{
		NodeID: s.NodeID, Role: s.Role, RaftState: s.RaftState, Witness: s.Witness,
		Leader: s.Leader, LeaderAddr: s.LeaderAddr, Term: s.Term,
		AppliedIndex: s.AppliedIndex, CommitIndex: s.CommitIndex, LastIndex: s.LastIndex,
		SnapshotIndex: s.SnapshotIndex, LagEntries: s.LagEntries, LastContactMS: s.LastContactMS,
		Records: s.Records, RoleChanges: s.RoleChanges, Since: s.Since,
	}
	if s.Peers != nil {
		out.Peers = make([]api.HAPeer, len(s.Peers))
		for i, p := range s.Peers {
			out.Peers[i] = api.HAPeer(p)
		}
	}
	return out
}

// notifyingCalls is the SBC as failover drives it, telling served each
// time it starts serving SIP (sbcd's systemd readiness: readyOnce).
type notifyingCalls struct {
	*sbc.SBC
	served func()
}

func (c notifyingCalls) Serve() {
	c.SBC.Serve()
	c.served()
}
