package mediarelay

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics by forwarding path: how many packets each path forwarded and how
// many flows each holds. Computed at scrape time from the relay's total and
// the kernel flows' last counters (refreshed every offload tick).
var (
	pathPacketsDesc = prometheus.NewDesc("sbc_media_path_packets_total",
		"RTP and RTCP datagrams forwarded, by path (userspace relay, xdp or tc kernel program); kernel figures are as of the last counter read (1 s).",
		[]string{"path"}, nil)
	pathFlowsDesc = prometheus.NewDesc("sbc_media_flows",
		"Media flows (one direction of RTP or RTCP of a stream) by the path that forwards them.",
		[]string{"path"}, nil)
)

type pathCollector struct{ r *Relay }

func registerPathMetrics(reg prometheus.Registerer, r *Relay) error {
	if reg == nil {
		return nil
	}
	_, err := register(reg, prometheus.Collector(pathCollector{r}))
	return err
}

func (c pathCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pathPacketsDesc
	ch <- pathFlowsDesc
}

func (c pathCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	var userFlows, kernFlows int
	var kernPackets uint64
	for _, s := range r.snapshot() {
		n := s.flowCount()
		s.off.mu.Lock()
		k := len(s.off.flows)
		for _, f := range s.off.flows {
			kernPackets += f.stats.Packets
		}
		s.off.mu.Unlock()
		kernFlows += k
		userFlows += max(n-k, 0)
	}
	ch <- prometheus.MustNewConstMetric(pathPacketsDesc, prometheus.CounterValue, float64(r.fwd.Load()), PathUserSpace)
	ch <- prometheus.MustNewConstMetric(pathFlowsDesc, prometheus.GaugeValue, float64(userFlows), PathUserSpace)
	if r.off != nil {
		kernPackets += r.off.removedPackets.Load()
		ch <- prometheus.MustNewConstMetric(pathPacketsDesc, prometheus.CounterValue, float64(kernPackets), r.off.dp.Path())
		ch <- prometheus.MustNewConstMetric(pathFlowsDesc, prometheus.GaugeValue, float64(kernFlows), r.off.dp.Path())
	}
}

// flowCount is the stream's flows: per side whose remote is known, its
// RTP, and its RTCP unless rtcp-mux.
func (s *Stream) flowCount() int {
	n := 0
	for side := range s.sides {
		sd := &s.sides[side]
		sd.mu.Lock()
		if sd.known && sd.sdpRTP.Port() != 0 {
			n++
			if !sd.mux {
				n++
			}
		}
		sd.mu.Unlock()
	}
	return n
}
