package ha

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics: role changes, leadership, indexes and replication lag. Index
// gauges are read at scrape time.
type metrics struct {
	reg           prometheus.Registerer
	cs            []prometheus.Collector
	roleChanges   prometheus.Counter
	leaseFailures prometheus.Counter
	batchOps      prometheus.Histogram
	applySeconds  prometheus.Histogram
}

func newMetrics(n *Node, reg prometheus.Registerer) *metrics {
	m := &metrics{
		reg: reg,
		roleChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ha_role_changes_total", Help: "Changes of effective leadership (gained or lost).",
		}),
		leaseFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ha_lease_failures_total", Help: "Lease checks in which no quorum answered in time (leadership dropped).",
		}),
		batchOps: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ha_batch_ops", Help: "Puts and deletes coalesced into one log entry.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ha_apply_seconds", Help: "Time from submitting a batch to its commit and local apply.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.cs = []prometheus.Collector{
		m.roleChanges, m.leaseFailures, m.batchOps, m.applySeconds,
		gauge("ha_leader", "1 while this node is the effective leader (active).", func() float64 {
			if n.IsLeader() {
				return 1
			}
			return 0
		}),
		gauge("ha_applied_index", "Last Raft index applied to the local store.", func() float64 { return float64(n.raft.AppliedIndex()) }),
		gauge("ha_commit_index", "Last Raft index known committed.", func() float64 { return float64(n.raft.CommitIndex()) }),
		gauge("ha_replication_lag_entries", "Committed entries not yet applied locally (follower) or appended entries not yet applied (leader).", func() float64 { return float64(n.lag()) }),
		gauge("ha_last_contact_seconds", "Seconds since a follower last heard from the leader (0 on the leader).", func() float64 { return n.lastContact().Seconds() }),
		gauge("ha_records", "Records in the local store.", func() float64 { return float64(n.Len()) }),
	}
	if reg != nil {
		for _, c := range m.cs {
			if err := reg.Register(c); err != nil {
				n.log.Warn("metric not registered", "error", err)
			}
		}
	}
	return m
}

func (m *metrics) unregister() {
	if m == nil || m.reg == nil {
		return
	}
	for _, c := range m.cs {
		m.reg.Unregister(c)
	}
}
