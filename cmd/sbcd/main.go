// Command sbcd is the EdgeSBC daemon: a B2BUA between a carrier trunk and
// an enterprise PBX.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/cmd/sbcd/internal/datapath"
	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/configs"
	"github.com/edgesbc/edgesbc/dashboard"
	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/sbc"
	"github.com/edgesbc/edgesbc/watchdog"
)

func main() {
	cfgPath := flag.String("config", "", "config file (YAML); the embedded loopback default when empty")
	check := flag.String("check-config", "", "validate this config file and exit")
	flag.Parse()
	witnessMain(*cfgPath, *check) // -role witness: runs and exits here

	if *check != "" {
		c, err := config.Load(*check)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("%s: ok\n", *check)
		fmt.Print(c.EffectiveGuard()) // the protection in force, defaults included
		return
	}
	if err := run(*cfgPath); err != nil {
		fmt.Fprintln(os.Stderr, "sbcd:", err)
		os.Exit(1)
	}
}

// loadConfig reads the config and returns it with the bytes it came from
// (their hash is the config's identity in /api/v1/config).
func loadConfig(path string) (*config.Config, []byte, error) {
	if path == "" {
		c, err := config.Parse(configs.Default)
		if err != nil {
			return nil, nil, fmt.Errorf("embedded default config: %w", err)
		}
		return c, configs.Default, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config %s: %w", path, err)
	}
	c, err := config.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, raw, nil
}

func run(path string) error {
	cfg, raw, err := loadConfig(path)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar) // a reload may change it
	setLevel(level, cfg.Log.Level)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	// From here on a signal (or the end of a drain) ends the process
	// within the grace, whatever is stuck (exit 3 and a goroutine dump
	// past it).
	sigCtx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, exit := context.WithCancel(sigCtx)
	defer exit()
	watchdog.BoundShutdown(ctx, cfg.ShutdownGrace.Std(), os.Stderr)
	sayWhatSIGTERMDoes(cfg, log)

	reg := prometheus.NewRegistry()
	opt := sbc.Options{Logger: log, Registry: reg}
	var afterRestore func() // runs after each restore of persisted calls
	var fence func(string)  // drops every kernel flow (HA standby, fenced)
	var anchor *mediarelay.Anchor
	var kernel *datapath.Kernel
	if cfg.Media.Anchored() {
		ac, err := anchorConfig(cfg, log, reg)
		if err != nil {
			return err
		}
		kp, err := datapath.Open(cfg, log, &ac.Relay)
		if err != nil {
			return err
		}
		defer kp.Close()
		kernel = kp
		anchor, err = mediarelay.NewAnchor(ac)
		if err != nil {
			return err
		}
		defer anchor.Close()
		if cfg.Persistence() == nil {
			kp.Reconcile(anchor) // no calls to restore: every pinned flow is an orphan
		} else {
			afterRestore = func() { kp.Reconcile(anchor) }
			fence = kp.Fence
		}
		opt.Media = anchor
	} else {
		log.Warn("media anchoring off: SDP passes untouched and media flows peer to peer")
	}
	records, err := openCDR(cfg, log, reg) // cdr.go
	if err != nil {
		return err
	}
	if records != nil {
		opt.Recorder = records
		defer closeCDR(records, log) // after s.Close: the records of the calls it ended
	}
	node, vips, err := openStore(cfg, log, reg, &opt) // ha or state_dir: the call records (ha.go)
	if err != nil {
		return err
	}
	if node != nil {
		defer node.Close() // after the failover below stopped
	}
	s, err := sbc.New(cfg, opt)
	if err != nil {
		return err
	}
	if m := kernel.BanMirror(); m != nil {
		s.MirrorBans(m) // banned sources dropped in XDP/tc, SIP and media alike
		if err := reg.Register(kernel.BanCollector()); err != nil {
			return err
		}
	}
	if err := s.Start(); err != nil {
		return err
	}
	ready := &readyOnce{status: "serving SIP", log: log} // notify.go: systemd Type=notify
	if cfg.HA != nil {
		ready.status = "following HA leadership"
	}
	if node == nil {
		ready.ready() // Start serves at once
	}
	fo, err := newFailover(node, vips, cfg, log, s, ready.ready, afterRestore, fence) // nil without HA
	if err != nil {
		return err
	}
	defer fo.Close() // after the SBC closed: its last records written
	wd, err := watchdog.New(watchdog.Config{
		Interval: cfg.Watchdog.Interval.Std(), Bound: cfg.Watchdog.Bound.Std(),
		Logger: log, Registerer: reg, Stalled: fo.Stalled,
	})
	if err != nil {
		return err
	}
	var shutdownHold watchdog.Hold // test hook: a shutdown that hangs
	stalls := map[string]func(time.Duration) error{"shutdown": shutdownHold.Set}
	if anchor != nil {
		wd.Add("relay", anchor.Heartbeat)
		stalls["relay"] = anchor.StallWorker
	}
	wd.Add("sip", s.CheckHandlers)
	fo.Run(wd.Healthy) // follow HA leadership: restore, reprogram, VIPs, serve
	if cfg.HA != nil {
		// A standby of a pair may never serve: it is ready once it follows
		// (state_dir alone: ready at its first Serve, which comes at once).
		ready.ready()
	}
	go wd.Run(ctx)
	// The dashboard's charts: sampled here, from the B2BUA's own counters.
	hist := dashboard.NewHistory(cfg.Admin.HistoryInterval.Std(), cfg.Admin.HistoryPoints())
	go hist.Run(ctx, func() dashboard.Counters { return dashboard.Counters(s.CallCounts()) })
	rl := newReloader(path, raw, cfg, s, anchor, level, log, reg) // reload.go
	dr := &drainer{s: s, exit: exit, log: log, poll: 100 * time.Millisecond}
	// reload and drain are writes: serveAdmin's token policy covers them
	// with every other admin endpoint.
	adminAPI := dashboard.Handler(hist, haAdmin(node, opsAdmin(rl, dr, s.AdminHandler())))
	hooks := func(h http.Handler) http.Handler { return watchdog.TestHooks(h, stalls) } // EDGESBC_TEST_HOOKS=1 only
	stopAdmin, err := serveAdmin(cfg.Admin, wd.Healthz(adminAPI), log, hooks)           // admin.go: the token policy, TLS
	if err != nil {
		_ = s.Close(context.Background())
		return err
	}
	log.Info("sbcd running", "admin", cfg.Admin.Listen, "config", orDefault(path))

	reloadOnHUP(ctx, rl, s, log)
	<-ctx.Done()
	_ = sdNotify("STOPPING=1")
	log.Info("shutting down")
	shutdownHold.Wait()
	// Half the grace for the calls to end; the rest is for the media,
	// datapath and Raft to close before BoundShutdown cuts it short.
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace.Std()/2)
	defer cancel()
	stopAdmin()
	if anchor != nil && cfg.HA == nil && cfg.StateDir != "" {
		// The calls stay for the next run: so do their kernel flows, and
		// offloaded media never stops (an HA node's flows are fenced
		// instead: the other node holds the VIPs).
		anchor.KeepKernelFlows()
	}
	return s.Close(sctx)
}

// anchorConfig gives each realm its media address, port range, NAT
// latching and codec list.
func anchorConfig(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (mediarelay.AnchorConfig, error) {
	ac := mediarelay.AnchorConfig{Timeout: cfg.Media.Timeout.Std(), Logger: log, Registerer: reg}
	for _, r := range cfg.Realms {
		lo, hi, _ := config.ParsePortRange(r.Media.Ports) // validated at load
		srtp, err := mediarelay.NewSRTPPolicy(r.Media.SRTP.Mode, r.Media.SRTP.Suites)
		if err != nil {
			return ac, fmt.Errorf("realms %s media srtp: %w", r.Name, err)
		}
		ac.Realms = append(ac.Realms, mediarelay.RealmMedia{
			Name: r.Name, Addr: r.MediaAddr(), MinPort: lo, MaxPort: hi, NAT: r.Media.NAT, Codecs: r.Media.Codecs,
			SRTP: srtp,
		})
	}
	return ac, nil
}

func orDefault(p string) string {
	if p == "" {
		return "(embedded default)"
	}
	return p
}
