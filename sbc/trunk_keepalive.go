package sbc

import (
	"context"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/topology"
)

// keepalive probes each of the trunk's targets with OPTIONS every
// interval and marks them down and up (policy.Trunk.Probe); routing skips
// down targets. Without an interval it only refreshes DNS.
func (ts *trunkSet) keepalive(ctx context.Context, run *trunkRun) {
	ts.resolve(ctx, run)
	lastDNS := time.Now()
	iv := run.t.Keepalive.Interval.Std()
	if iv == 0 {
		iv = dnsRefresh
	}
	tick := time.NewTicker(iv)
	defer tick.Stop()
	for {
		if run.t.Keepalive.Interval > 0 {
			ts.probeAll(ctx, run)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if time.Since(lastDNS) >= dnsRefresh {
			ts.resolve(ctx, run)
			lastDNS = time.Now()
		}
	}
}

// probeAll sends one OPTIONS to every target at once and waits for all.
func (ts *trunkSet) probeAll(ctx context.Context, run *trunkRun) {
	var wg sync.WaitGroup
	for _, tg := range run.t.Targets() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := ts.options1(ctx, run, tg)
			if ctx.Err() != nil {
				return
			}
			// Any answer shows the target alive, except those that say it
			// cannot take calls now.
			ok := code != 0 && code != sip.StatusRequestTimeout && code != sip.StatusServiceUnavailable
			result := "ok"
			if !ok {
				result = "fail"
			}
			ts.options.WithLabelValues(run.t.Name, result).Inc()
			changed, up := run.t.Probe(tg, ok, code, time.Now())
			v := 0.0
			if up {
				v = 1
			}
			ts.targetUp.WithLabelValues(run.t.Name, tg.String()).Set(v)
			if changed {
				state := "down"
				if up {
					state = "up"
				}
				run.realm.log.Info("trunk target "+state, "trunk", run.t.Name, "target", tg.String(), "code", code)
			}
		}()
	}
	wg.Wait()
}

// options1 sends one OPTIONS and returns the final status, 0 for none in
// the keepalive timeout.
func (ts *trunkSet) options1(ctx context.Context, run *trunkRun, tg config.Target) int {
	r := run.realm
	transport := "UDP"
	if tg.Transport == "tcp" {
		transport = "TCP"
	}
	l := r.local(transport)
	target := sip.Uri{Scheme: "sip", Host: uriHost(tg.Host), Port: tg.Port}
	if transport == "TCP" {
		target.UriParams = sip.NewParams()
		target.UriParams.Add("transport", "tcp")
	}
	d := topology.Dialog{
		CallID:    newSIPCallID(),
		LocalURI:  sip.Uri{Scheme: "sip", User: "sbc", Host: uriHost(l.Host)},
		LocalTag:  newTag(),
		RemoteURI: sip.Uri{Scheme: "sip", Host: uriHost(tg.Host)},
		Target:    target,
	}
	req := topology.BuildRequest(sip.OPTIONS, d, 1, 70, l, nil, nil, nil, "")
	tctx, cancel := context.WithTimeout(ctx, run.t.Keepalive.Timeout.Std())
	defer cancel()
	tx, err := r.request(tctx, req)
	if err != nil {
		r.log.Debug("OPTIONS not sent", "trunk", run.t.Name, "target", tg.String(), "error", err)
		return 0
	}
	defer tx.Terminate()
	ts.metrics.reqOut(r.Name, "OPTIONS")
	for {
		select {
		case res := <-tx.Responses():
			ts.metrics.resIn(r.Name, res.StatusCode)
			if !res.IsProvisional() {
				return res.StatusCode
			}
		case <-tx.Done():
			return 0
		case <-tctx.Done():
			return 0
		}
	}
}
