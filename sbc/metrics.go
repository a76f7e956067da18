package sbc

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the B2BUA's Prometheus series. Each SBC has its own registry,
// so tests can run several in one process.
type Metrics struct {
	Registry     *prometheus.Registry
	ActiveCalls  prometheus.Gauge
	Calls        *prometheus.CounterVec // by result
	Requests     *prometheus.CounterVec // by realm, direction, method
	Responses    *prometheus.CounterVec // by realm, direction, code
	Malformed    *prometheus.CounterVec // by realm, reason
	DroppedStray *prometheus.CounterVec // by realm, kind
	Reliable     *prometheus.CounterVec // 100rel, PRACK and early UPDATE events (prack.go), by realm, event
	// SessionTimers counts RFC 4028 events by realm and event (sessiontimer.go).
	SessionTimers *prometheus.CounterVec
	// Forks counts leg B's forked dialogs by realm and event (fork.go);
	// CancelRaces what came of CANCELs that raced an answer (cancel.go).
	Forks, CancelRaces *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		Registry: reg,
		ActiveCalls: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sbc_calls_active", Help: "Calls in progress (set up or established).",
		}),
		Calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbc_calls_total", Help: "Finished calls by result.",
		}, []string{"result"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbc_sip_requests_total", Help: "SIP requests by realm, direction and method.",
		}, []string{"realm", "direction", "method"}),
		Responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbc_sip_responses_total", Help: "SIP responses by realm, direction and status code.",
		}, []string{"realm", "direction", "code"}),
		Malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbc_sip_malformed_total", Help: "Malformed SIP messages rejected (400/505) or dropped, by realm and cause.",
		}, []string{"realm", "reason"}),
		DroppedStray: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbc_sip_stray_total", Help: "Messages that matched no call or transaction (stray ACKs and responses), by realm and kind.",
		}, []string{"realm", "kind"}),
		Reliable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbc_sip_reliable_total", Help: "Reliable provisionals (RFC 3262), PRACKs and early UPDATEs by realm and event.",
		}, []string{"realm", "event"}),
	}
	m.SessionTimers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sbc_session_timer_total", Help: "Session timer (RFC 4028) events by realm: refresh_sent, refresh_received, refresh_failed, expired, too_small (422 sent), malformed (400 sent), malformed_response, retry_422.",
	}, []string{"realm", "event"})
	m.Registry.MustRegister(m.SessionTimers)
	m.Forks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sbc_forked_dialogs_total", Help: "Dialogs of leg B by realm and event: early (an early dialog, one per To tag), early_refused (past the bound), loser_2xx (a 2xx that lost to the first, ACKed and hung up), loser_retransmission (its 2xx again, ACKed again).",
	}, []string{"realm", "event"})
	m.CancelRaces = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sbc_cancel_races_total", Help: "CANCEL races by realm and event: answer_after_cancel (a 2xx lost to the caller's CANCEL, hung up on leg B), abandoned_cancelled and abandoned_answered (a target given up that answered later: CANCELed, or ACKed and hung up), reinvite_cancelled (a re-INVITE's CANCEL relayed), reinvite_answer_after_cancel.",
	}, []string{"realm", "event"})
	m.Registry.MustRegister(m.Forks, m.CancelRaces)
	m.Registry.MustRegister(m.ActiveCalls, m.Calls, m.Requests, m.Responses, m.Malformed, m.DroppedStray, m.Reliable,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) reqIn(realm, method string) { m.Requests.WithLabelValues(realm, "in", method).Inc() }
func (m *Metrics) reqOut(realm, method string) {
	m.Requests.WithLabelValues(realm, "out", method).Inc()
}
func (m *Metrics) resIn(realm string, code int) {
	m.Responses.WithLabelValues(realm, "in", strconv.Itoa(code)).Inc()
}
func (m *Metrics) resOut(realm string, code int) {
	m.Responses.WithLabelValues(realm, "out", strconv.Itoa(code)).Inc()
}
