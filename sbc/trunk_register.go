package sbc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/topology"
)

// Registration states, as the admin API shows them.
const (
	regIdle        = "unregistered"
	regRegistering = "registering"
	regRegistered  = "registered"
	regFailed      = "failed"
)

// minRefresh bounds how often a registration is refreshed.
const minRefresh = 500 * time.Millisecond

// maxAuthRounds bounds challenges answered per REGISTER (a 401 then a 407,
// or a stale nonce).
const maxAuthRounds = 2

// registration keeps the SBC registered with the carrier for one trunk
// (RFC 3261 10.2): one Call-ID for its life, CSeq rising, refresh at 50-80%
// of the granted expiry, back-off doubling from retry_min to retry_max
// after a failure, rotating through the trunk's up targets.
type registration struct {
	ts *trunkSet
	tk *trunkRun

	callID, fromTag string
	mu              sync.Mutex
	cseq            uint32
	info_           RegInfo
	target          int // next target index to try
	lastTarget      config.Target
}

// RegInfo is a registration's state; the admin API shows it as
// api.TrunkRegistration.
type RegInfo struct {
	State     string    `json:"state"`
	AOR       string    `json:"aor"`
	Registrar string    `json:"registrar,omitempty"`
	Expires   int       `json:"expires"` // granted, seconds
	LastCode  int       `json:"last_code"`
	LastError string    `json:"last_error,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Next      time.Time `json:"next,omitzero"` // next REGISTER (refresh or retry)
	Successes uint64    `json:"successes"`
	Failures  uint64    `json:"failures"`
}

func newRegistration(ts *trunkSet, run *trunkRun) *registration {
	g := &registration{ts: ts, tk: run, callID: newSIPCallID(), fromTag: newTag(), cseq: uint32(randUint16()) + 1}
	g.info_ = RegInfo{State: regIdle, AOR: g.aorString()}
	return g
}

func (g *registration) info() RegInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.info_
}

func (g *registration) user() string {
	if c := g.tk.t.Creds; c != nil {
		return c.Username
	}
	return "sbc"
}

// aor is the address of record: user@domain.
func (g *registration) aor() sip.Uri {
	return sip.Uri{Scheme: "sip", User: g.user(), Host: uriHost(g.tk.t.Domain)}
}

// run registers until ctx ends.
func (g *registration) run(ctx context.Context) {
	tr := g.tk.t
	backoff := tr.Register.RetryMin.Std()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		granted, err := g.once(ctx, tr.Register.Expires)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		g.mu.Lock()
		if err == nil {
			backoff = tr.Register.RetryMin.Std()
			// Refresh at 50-80% of what was granted, spread so many SBCs
			// do not refresh together.
			wait = time.Duration(float64(granted) * float64(time.Second) * (0.5 + 0.3*rand.Float64()))
			wait = max(wait, minRefresh) // a registrar granting ~0 s must not make us spin
			g.info_.Successes++
			if g.info_.State != regRegistered {
				g.info_.Since = time.Now()
			}
			g.info_.State, g.info_.Expires, g.info_.LastError = regRegistered, granted, ""
			g.ts.registered.WithLabelValues(tr.Name).Set(1)
			g.ts.registers.WithLabelValues(tr.Name, "ok").Inc()
		} else {
			// Jitter of +-20% on the back-off.
			wait = time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
			backoff = min(2*backoff, tr.Register.RetryMax.Std())
			g.info_.Failures++
			if g.info_.State != regFailed {
				g.info_.Since = time.Now()
			}
			g.info_.State, g.info_.LastError, g.info_.Expires = regFailed, err.Error(), 0
			g.ts.registered.WithLabelValues(tr.Name).Set(0)
			g.ts.registers.WithLabelValues(tr.Name, "fail").Inc()
		}
		g.info_.Next = time.Now().Add(wait)
		g.mu.Unlock()
		if err == nil {
			g.tk.realm.log.Info("trunk registered", "trunk", tr.Name, "registrar", g.lastTarget.String(), "expires", granted, "refresh_in", wait.Round(time.Millisecond))
		} else {
			g.tk.realm.log.Warn("trunk registration failed", "trunk", tr.Name, "error", err, "retry_in", wait.Round(time.Millisecond))
		}
		timer.Reset(wait)
	}
}

// errRegister is wrapped by every registration failure.
var errRegister = errors.New("REGISTER failed")

// once sends one REGISTER (answering challenges) to the next target and
// returns the expiry the registrar granted.
func (g *registration) once(ctx context.Context, expires int) (int, error) {
	tr := g.tk.t
	targets := tr.UpTargets()
	if len(targets) == 0 {
		targets = tr.Targets() // all down: try anyway, a registrar may not answer OPTIONS
	}
	if len(targets) == 0 {
		return 0, fmt.Errorf("%w: no target resolved", errRegister)
	}
	g.mu.Lock()
	if g.info_.State != regRegistered { // a refresh keeps showing registered
		g.info_.State = regRegistering
	}
	tg := targets[g.target%len(targets)]
	g.lastTarget = tg
	g.info_.Registrar = tg.String()
	g.mu.Unlock()
	granted, err := g.exchange(ctx, tg, expires)
	if err != nil {
		g.mu.Lock()
		g.target++ // the next attempt goes to the next target
		g.mu.Unlock()
	}
	return granted, err
}

// exchange is one REGISTER transaction plus its challenge rounds.
func (g *registration) exchange(ctx context.Context, tg config.Target, expires int) (int, error) {
	tr, r := g.tk.t, g.tk.realm
	req := g.build(tg, expires)
	var lastCode int
	for round := 0; ; round++ {
		res, err := g.send(ctx, req)
		if err != nil {
			return 0, err
		}
		lastCode = res.StatusCode
		g.mu.Lock()
		g.info_.LastCode = lastCode
		g.mu.Unlock()
		switch {
		case res.IsSuccess():
			granted := grantedExpiry(req, res, expires)
			if granted == 0 && expires > 0 {
				return 0, fmt.Errorf("%w: the registrar granted 0 s", errRegister)
			}
			return granted, nil
		case (res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired) && round < maxAuthRounds:
			alg, err := authorize(req, res, tr.Creds)
			if err != nil {
				return 0, fmt.Errorf("%w: %d: %w", errRegister, res.StatusCode, err)
			}
			g.ts.authTotal(tr.Name, "REGISTER", alg)
		case res.StatusCode == sip.StatusIntervalToBrief && round < maxAuthRounds:
			minExp, err := strconv.Atoi(strings.TrimSpace(headerValue(res, "Min-Expires")))
			if err != nil || minExp <= expires || minExp > 86400 {
				return 0, fmt.Errorf("%w: 423 with Min-Expires %q", errRegister, headerValue(res, "Min-Expires"))
			}
			expires = minExp
			setExpires(req, expires)
		default:
			return 0, fmt.Errorf("%w: %d %s", errRegister, res.StatusCode, res.Reason)
		}
		// The next round is a new transaction: new branch, next CSeq.
		req.RemoveHeader("Via")
		req.PrependHeader(newVia(r.local(req.Transport())))
		g.mu.Lock()
		g.cseq++
		req.CSeq().SeqNo = g.cseq
		g.mu.Unlock()
	}
}

// build makes a REGISTER for the AOR, sent to one target.
func (g *registration) build(tg config.Target, expires int) *sip.Request {
	r := g.tk.realm
	transport := "UDP"
	if tg.Transport == "tcp" {
		transport = "TCP"
	}
	l := r.local(transport)
	aor := g.aor()
	ruri := sip.Uri{Scheme: "sip", Host: uriHost(g.tk.t.Domain)}
	if transport == "TCP" {
		ruri.UriParams = sip.NewParams()
		ruri.UriParams.Add("transport", "tcp")
	}
	g.mu.Lock()
	g.cseq++
	seq := g.cseq
	g.mu.Unlock()
	d := topology.Dialog{CallID: g.callID, LocalURI: aor, LocalTag: g.fromTag, RemoteURI: aor, Target: ruri}
	req := topology.BuildRequest(sip.REGISTER, d, seq, 70, l, nil, nil, nil, "")
	contact := l.Contact()
	contact.User = g.user()
	req.RemoveHeader("Contact")
	req.AppendHeader(&sip.ContactHeader{Address: contact})
	setExpires(req, expires)
	req.SetDestination(net.JoinHostPort(tg.Host, strconv.Itoa(tg.Port)))
	return req
}

func setExpires(req *sip.Request, expires int) {
	req.RemoveHeader("Expires")
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
}

// send runs one REGISTER transaction to its final answer, bounded by
// twice the trunk's target timeout.
func (g *registration) send(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	r := g.tk.realm
	tctx, cancel := context.WithTimeout(ctx, 2*g.tk.t.TargetTimeout)
	defer cancel()
	tx, err := r.request(tctx, req.Clone())
	if err != nil {
		return nil, fmt.Errorf("%w: send: %w", errRegister, err)
	}
	defer tx.Terminate()
	g.ts.metrics.reqOut(r.Name, "REGISTER")
	for {
		select {
		case res := <-tx.Responses():
			g.ts.metrics.resIn(r.Name, res.StatusCode)
			if !res.IsProvisional() {
				return res, nil
			}
		case <-tx.Done():
			return nil, fmt.Errorf("%w: no answer from %s", errRegister, req.Destination())
		case <-tctx.Done():
			return nil, fmt.Errorf("%w: no answer from %s in %v", errRegister, req.Destination(), 2*g.tk.t.TargetTimeout)
		}
	}
}

// grantedExpiry is the expiry of our binding in a 2xx: the expires
// parameter of the Contact that is ours (same user, host and port as the
// one sent; a registrar lists the AOR's other bindings too), else the
// Expires header, else what was asked (RFC 3261 10.2.4).
func grantedExpiry(req *sip.Request, res *sip.Response, asked int) int {
	var ours sip.Uri
	if c := req.Contact(); c != nil {
		ours = c.Address
	}
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || c.Address.User != ours.User || !strings.EqualFold(c.Address.Host, ours.Host) || c.Address.Port != ours.Port {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return n
			}
		}
	}
	if n, err := strconv.Atoi(strings.TrimSpace(headerValue(res, "Expires"))); err == nil && n >= 0 {
		return n
	}
	return asked
}

// unregister removes the binding (Expires: 0) when the SBC stops, if it
// was registered; bounded by ctx.
func (g *registration) unregister(ctx context.Context) {
	g.mu.Lock()
	was := g.info_.State == regRegistered
	tg := g.lastTarget
	g.mu.Unlock()
	if !was {
		return
	}
	uctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := g.exchange(uctx, tg, 0); err != nil {
		g.tk.realm.log.Debug("unregister", "trunk", g.tk.t.Name, "error", err)
	}
	g.mu.Lock()
	g.info_.State = regIdle
	g.mu.Unlock()
	g.ts.registered.WithLabelValues(g.tk.t.Name).Set(0)
}

func headerValue(m sip.Message, name string) string {
	if hs := m.GetHeaders(name); len(hs) > 0 {
		return hs[0].Value()
	}
	return ""
}

func (g *registration) aorString() string {
	u := g.aor()
	return u.String()
}
