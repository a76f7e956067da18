package sbc

import (
	"context"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/policy"
	"github.com/edgesbc/edgesbc/sbc/sipguard"
)

// Overload control (config overload:, policy.Overload): a new INVITE on UDP
// is weighed before sipgo even parses it (shedRaw, in the read filter),
// and again as the first thing onInvite does (TCP, TLS, and the INVITEs
// the read filter let through), before a call, leg B or media exist.
// Past the limit it gets a 503 with Retry-After, sent statelessly as the
// guard's answers are (no transaction kept to retransmit it, no call, no
// CDR: a counter). In-dialog requests never pass here, so ACK, BYE,
// re-INVITE, PRACK and UPDATE of the calls let in keep the SBC's time.
//
// The load estimate is the Go scheduler's delay: how long runnable
// goroutines waited for a CPU over the last sample period, its 90th
// percentile. sipgo runs a goroutine per request, so this is the time a
// request waits in the SBC before its handler runs, the queue that grows
// when the SBC is past its capacity (and when a neighbour takes the CPU).
//
// Memory is bounded apart: while the live heap (as of the last collection)
// is over overload.max_heap_mib every new INVITE is refused. Under a flood
// what holds it is mostly sipgo's finished transactions, kept for
// sip.transaction_linger (about 25 KB a call, so 2.4 GB at 3,000 calls a
// second for the default 32 s), which the linger then frees.
type overloadControl struct {
	ctl     *policy.Overload
	now     policy.Clock
	retry   time.Duration
	maxHeap uint64
	live    atomic.Uint64          // live heap bytes, last sample
	shed    *prometheus.CounterVec // by realm, reason
}

// overloadSample is how often the delay is read; the limit adapts every
// four samples (policy.OverloadLimits.Interval), on the lowest of them.
const overloadSample = 50 * time.Millisecond

func newOverloadControl(cfg config.Overload, reg *prometheus.Registry, now policy.Clock) *overloadControl {
	if !cfg.On() {
		return nil
	}
	o := &overloadControl{
		ctl: policy.NewOverload(policy.OverloadLimits{
			MaxInflight: cfg.MaxInflight, MinInflight: cfg.MinInflight,
			TargetDelay: cfg.TargetDelay.Std(), Interval: 4 * overloadSample,
		}),
		now: now, retry: cfg.RetryAfter.Std(), maxHeap: uint64(cfg.MaxHeapMiB) << 20,
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbc_overload_shed_total", Help: "New INVITEs answered 503 because the SBC was past its capacity, by realm and reason (limit: setups in progress; heap: max_heap_mib).",
		}, []string{"realm", "reason"}),
	}
	reg.MustRegister(o.shed, overloadCollector{o})
	return o
}

// admitSetup is onInvite's first step for a new INVITE: it returns the
// function that gives the setup's place back when the setup is over, or
// answers 503 and returns false.
func (s *SBC) admitSetup(r *Realm, req *sip.Request, tx sip.ServerTransaction) (func(), bool) {
	o := s.overload
	if o == nil {
		return func() {}, true
	}
	reason := "heap"
	if o.live.Load() <= o.maxHeap {
		if o.ctl.Admit(o.now.Now()) {
			return o.ctl.Done, true
		}
		reason = "limit"
	}
	o.shed.WithLabelValues(r.Name, reason).Inc()
	s.guard.shed.Add(1) // the dashboard's calls refused for load (stats.go)
	s.guard.answer(r, req, tx, sip.StatusServiceUnavailable, "Service Unavailable", retryAfter(o.retry))
	return nil, false
}

// shedRaw runs in the read filter on every UDP datagram sipguard
// accepted, before sipgo parses it: while overload control refuses new
// calls, a new INVITE (no To tag, and no call of its Call-ID: not a
// retransmission of one let in) is answered 503 from its bytes, and the
// ACKs of those 503s are dropped. It says whether it took the datagram.
// Parsing is most of what a refused call costs (sipgo parses in one read
// loop per listener): shed after it, the 503s waited behind the flood.
func (s *SBC) shedRaw(r *Realm, p sip.TransportReadProps, data []byte) bool {
	o := s.overload
	if o == nil || r.udp == nil {
		return false
	}
	if sipguard.IsShedAck(data) {
		s.metrics.DroppedStray.WithLabelValues(r.Name, "ack").Inc()
		return true
	}
	cid, ok := sipguard.NewInvite(data)
	if !ok {
		return false
	}
	reason := "heap"
	if o.live.Load() <= o.maxHeap {
		reason = "limit"
		if !o.ctl.Refuses(o.now.Now()) {
			return false
		}
	}
	if _, known := s.calls.lookup(string(cid)); known {
		return false // onInvite sees it (sipgo absorbs a retransmission)
	}
	res := sipguard.ShedResponse(data, int(o.retry/time.Second))
	if res == nil || !s.guard.mayAnswer(addrOf(p.RemoteAddr), len(data), len(res), 1) {
		return false // onInvite answers what cannot be answered here
	}
	o.shed.WithLabelValues(r.Name, reason).Inc()
	s.guard.offered.Add(1) // the dashboard's counts (stats.go)
	s.guard.shed.Add(1)
	if _, err := r.udp.WriteTo(res, p.RemoteAddr); err == nil {
		s.metrics.resOut(r.Name, sip.StatusServiceUnavailable)
	}
	return true
}

// measure feeds the scheduler's delay to the controller until ctx ends.
func (o *overloadControl) measure(ctx context.Context) {
	sample := []metrics.Sample{{Name: "/sched/latencies:seconds"}, {Name: "/gc/heap/live:bytes"}}
	var last []uint64
	t := time.NewTicker(overloadSample)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[1].Value.Kind() == metrics.KindUint64 {
			o.live.Store(sample[1].Value.Uint64())
		}
		if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
			return // not this Go's metric: no estimate, the cap alone holds
		}
		h := sample[0].Value.Float64Histogram()
		o.ctl.Observe(o.now.Now(), quantileSince(h, last, 0.9))
		last = append(last[:0], h.Counts...)
	}
}

// quantileSince is the q quantile of what histogram h counted since the
// counts in last (nil: since the start), as the upper bound of its bucket.
func quantileSince(h *metrics.Float64Histogram, last []uint64, q float64) time.Duration {
	var total uint64
	for i, c := range h.Counts {
		if i < len(last) {
			c -= last[i]
		}
		total += c
	}
	if total == 0 {
		return 0
	}
	want := uint64(q * float64(total))
	var seen uint64
	for i, c := range h.Counts {
		if i < len(last) {
			c -= last[i]
		}
		seen += c
		if seen > want {
			hi := h.Buckets[i+1]
			if hi > 3600 { // the last bucket's bound is +Inf
				hi = h.Buckets[i]
			}
			return time.Duration(hi * float64(time.Second))
		}
	}
	return 0
}

// overloadCollector exports the load estimate, the limit and the heap.
type overloadCollector struct{ o *overloadControl }

var (
	ovInflightDesc = prometheus.NewDesc("sbc_overload_setups_inflight", "Call setups in progress (INVITE received, final answer not yet sent and ACKed).", nil, nil)
	ovLimitDesc    = prometheus.NewDesc("sbc_overload_limit", "Call setups allowed in progress now (adapts to the delay).", nil, nil)
	ovDelayDesc    = prometheus.NewDesc("sbc_overload_delay_seconds", "The load estimate: 90th percentile of the scheduler's delay over the last sample.", nil, nil)
	ovHeapDesc     = prometheus.NewDesc("sbc_overload_heap_live_bytes", "Live heap as of the last collection, against overload.max_heap_mib.", nil, nil)
)

func (c overloadCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ovInflightDesc
	ch <- ovLimitDesc
	ch <- ovDelayDesc
	ch <- ovHeapDesc
}

func (c overloadCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.o.ctl.State()
	ch <- prometheus.MustNewConstMetric(ovInflightDesc, prometheus.GaugeValue, float64(st.Inflight))
	ch <- prometheus.MustNewConstMetric(ovLimitDesc, prometheus.GaugeValue, float64(st.Limit))
	ch <- prometheus.MustNewConstMetric(ovDelayDesc, prometheus.GaugeValue, st.Delay.Seconds())
	ch <- prometheus.MustNewConstMetric(ovHeapDesc, prometheus.GaugeValue, float64(c.o.live.Load()))
}
