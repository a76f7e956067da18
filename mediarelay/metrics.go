package mediarelay

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the relay's Prometheus series. The workers add to them once
// per batch, not per packet, to keep atomic traffic off the hot path. A nil
// *metrics (no Registerer) records nothing.
type metrics struct {
	forwarded prometheus.Counter
	dropped   prometheus.Counter
	bytes     prometheus.Counter
	streams   prometheus.Gauge
	// SRTP drops by reason (auth, replay, malformed); per packet, but
	// only on the failure path.
	srtpAuth, srtpReplay, srtpMalformed prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	packets := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sbc_media_packets_total",
		Help: "RTP and RTCP datagrams received by the user-space relay, by result.",
	}, []string{"result"})
	bytes := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sbc_media_bytes_total",
		Help: "Bytes of RTP and RTCP forwarded by the user-space relay.",
	})
	streams := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sbc_media_streams_active",
		Help: "Media streams open in the user-space relay.",
	})
	srtpDrops := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sbc_media_srtp_dropped_total",
		Help: "SRTP/SRTCP packets dropped by the relay: failed authentication, replayed, or not SRTP (malformed).",
	}, []string{"reason"})
	var err error
	if srtpDrops, err = register(reg, srtpDrops); err != nil {
		return nil, err
	}
	if packets, err = register(reg, packets); err != nil {
		return nil, err
	}
	if bytes, err = register(reg, bytes); err != nil {
		return nil, err
	}
	if streams, err = register(reg, streams); err != nil {
		return nil, err
	}
	return &metrics{
		forwarded: packets.WithLabelValues("forwarded"),
		dropped:   packets.WithLabelValues("dropped"),
		bytes:     bytes,
		streams:   streams,

		srtpAuth:      srtpDrops.WithLabelValues("auth"),
		srtpReplay:    srtpDrops.WithLabelValues("replay"),
		srtpMalformed: srtpDrops.WithLabelValues("malformed"),
	}, nil
}

// register adopts an identical collector that is already registered, so
// that a second Relay on the same registry (tests, restarts) shares series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register media metrics: %w", err)
}

// batch records one worker batch.
func (m *metrics) batch(forwarded, dropped, bytes int) {
	if m == nil {
		return
	}
	if forwarded > 0 {
		m.forwarded.Add(float64(forwarded))
		m.bytes.Add(float64(bytes))
	}
	if dropped > 0 {
		m.dropped.Add(float64(dropped))
	}
}

func (m *metrics) streamDelta(d float64) {
	if m != nil {
		m.streams.Add(d)
	}
}

// srtpDrop counts one SRTP drop.
func (m *metrics) srtpDrop(c prometheus.Counter) {
	if m != nil {
		c.Inc()
	}
}
