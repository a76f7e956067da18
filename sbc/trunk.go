package sbc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/api"
	"github.com/edgesbc/edgesbc/policy"
)

// dnsRefresh is how often trunk names are looked up again.
const dnsRefresh = time.Minute

// trunkSet runs the trunks: DNS, OPTIONS keepalive per target and
// outbound registration. Routing reads the same policy.Trunk values.
type trunkSet struct {
	metrics  *Metrics // SIP counters of keepalives and registrations
	runs     []*trunkRun
	resolver policy.Resolver
	wg       sync.WaitGroup
	cancel   context.CancelFunc

	targetUp   *prometheus.GaugeVec   // trunk, target
	registered *prometheus.GaugeVec   // trunk
	registers  *prometheus.CounterVec // trunk, result
	options    *prometheus.CounterVec // trunk, result
	auths      *prometheus.CounterVec // trunk, method, algorithm

	limited map[string]bool // trunks with an admission policy (trunk_admission.go)
}

type trunkRun struct {
	t     *policy.Trunk
	realm *Realm
	reg   *registration // nil when the trunk does not register
}

// setupTrunks builds the trunks of the config and hands them, with the
// dial plan, to the router. Nothing is sent until startTrunks.
func (s *SBC) setupTrunks() error {
	ts := &trunkSet{metrics: s.metrics, resolver: policy.NewDNS()}
	ts.targetUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sbc_trunk_target_up", Help: "1 when a trunk target answers OPTIONS (or is not probed), 0 when marked down.",
	}, []string{"trunk", "target"})
	ts.registered = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sbc_trunk_registered", Help: "1 while the trunk's outbound registration is current.",
	}, []string{"trunk"})
	ts.registers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sbc_trunk_register_total", Help: "Outbound REGISTER attempts by trunk and result.",
	}, []string{"trunk", "result"})
	ts.options = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sbc_trunk_options_total", Help: "OPTIONS keepalives by trunk and result (ok, fail).",
	}, []string{"trunk", "result"})
	ts.auths = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sbc_trunk_auth_total", Help: "Digest challenges answered by trunk, method and algorithm.",
	}, []string{"trunk", "method", "algorithm"})
	s.metrics.Registry.MustRegister(ts.targetUp, ts.registered, ts.registers, ts.options, ts.auths)
	var trunks []*policy.Trunk
	for _, tc := range s.cfg.Trunks {
		t, err := policy.NewTrunk(tc)
		if err != nil {
			return err
		}
		run := &trunkRun{t: t, realm: s.realms[tc.Realm]}
		if run.realm == nil {
			return fmt.Errorf("trunk %s: unknown realm %q", tc.Name, tc.Realm)
		}
		if tc.Register.Enabled {
			run.reg = newRegistration(ts, run)
		}
		ts.runs = append(ts.runs, run)
		trunks = append(trunks, t)
	}
	s.trunks = ts
	s.setupTrunkAdmission(ts)
	pol, err := newPolicy(s.cfg, trunks) // reload.go
	if err != nil {
		return err
	}
	s.pol.Store(pol)
	return nil
}

// startTrunks resolves names and starts keepalive and registration.
func (s *SBC) startTrunks() {
	ts := s.trunks
	ctx, cancel := context.WithCancel(s.ctx)
	ts.cancel = cancel
	for _, run := range ts.runs {
		for _, tg := range run.t.Targets() {
			ts.targetUp.WithLabelValues(run.t.Name, tg.String()).Set(1)
		}
		ts.wg.Add(1)
		go func() {
			defer ts.wg.Done()
			ts.keepalive(ctx, run)
		}()
		if run.reg != nil {
			ts.wg.Add(1)
			go func() {
				defer ts.wg.Done()
				run.reg.run(ctx)
			}()
		}
	}
}

// stopTrunks ends keepalive and registration, unregistering (bounded by
// ctx) where the SBC was registered.
func (s *SBC) stopTrunks(ctx context.Context) {
	ts := s.trunks
	if ts == nil || ts.cancel == nil {
		return
	}
	ts.cancel()
	ts.wg.Wait()
	var wg sync.WaitGroup
	for _, run := range ts.runs {
		if run.reg != nil {
			wg.Add(1)
			go func() { defer wg.Done(); run.reg.unregister(ctx) }()
		}
	}
	wg.Wait()
}

func (ts *trunkSet) authTotal(trunk, method, alg string) {
	ts.auths.WithLabelValues(trunk, method, alg).Inc()
}

// resolve looks the trunk's names up, and keeps the metric's targets in
// step.
func (ts *trunkSet) resolve(ctx context.Context, run *trunkRun) {
	if !run.t.NeedsDNS() {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := run.t.Resolve(rctx, ts.resolver); err != nil {
		run.realm.log.Warn("trunk DNS", "trunk", run.t.Name, "error", err)
	}
}

// Trunks reports every trunk's targets and registration.
func (s *SBC) Trunks() []api.Trunk {
	if s.trunks == nil {
		return nil
	}
	out := make([]api.Trunk, 0, len(s.trunks.runs))
	for _, run := range s.trunks.runs {
		ti := api.Trunk{Name: run.t.Name, Realm: run.t.Realm, Up: run.t.Up()}
		targets, dnsErr := run.t.Status()
		ti.Targets, ti.DNSError = apiSlice(targets, apiTrunkTarget), dnsErr
		if run.reg != nil {
			ri := api.TrunkRegistration(run.reg.info())
			ti.Registration = &ri
		}
		out = append(out, ti)
	}
	return out
}

// serveTrunks is GET /api/v1/trunks.
func (s *SBC) serveTrunks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	t := s.Trunks()
	if t == nil {
		t = []api.Trunk{}
	}
	_ = json.NewEncoder(w).Encode(t)
}
