package datapath

import (
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/bpf"
)

// BanMap is what the guard's ban list mirrors into (policy.BanMirror's
// method set: this package knows no policy).
type BanMap interface {
	Ban(addr netip.Addr, until time.Time) error
	Unban(addr netip.Addr) error
}

// BanMirror is the kernel's ban map, for the guard's ban list to mirror
// into (sbc.SBC.MirrorBans): a banned source's SIP and media are then
// dropped in XDP/tc before the stack. Nil without a kernel datapath.
func (k *Kernel) BanMirror() BanMap {
	if k == nil || k.dp == nil {
		return nil
	}
	// Bans an earlier run pinned have ended or will be replayed: drop
	// the ended ones, so the map's count is honest.
	if _, err := k.dp.ExpireBans(); err != nil {
		k.log.Warn("kernel ban map: expiring old bans", "err", err)
	}
	return kernelBans{k}
}

// kernelBans logs the first failure of each kind once: the user-space
// list stays authoritative (a source the kernel map refused, a full map
// say, is still dropped there, before parsing).
type kernelBans struct{ k *Kernel }

func (b kernelBans) Ban(addr netip.Addr, until time.Time) error {
	err := b.k.dp.Ban(addr, until)
	if err != nil {
		b.k.log.Debug("kernel ban map: ban not mirrored (dropped in user space)", "addr", addr, "err", err)
	}
	return err
}

func (b kernelBans) Unban(addr netip.Addr) error {
	err := b.k.dp.Unban(addr)
	if err != nil {
		b.k.log.Debug("kernel ban map: unban", "addr", addr, "err", err)
	}
	return err
}

var (
	kernelBannedDesc = prometheus.NewDesc("sbc_kernel_ban_dropped_packets_total",
		"Packets from banned sources dropped by the XDP/tc program before the stack (SIP and media).", nil, nil)
	kernelBansDesc = prometheus.NewDesc("sbc_kernel_bans", "Entries in the kernel ban map.", nil, nil)
)

// BanCollector exports the kernel's ban drops and map size.
func (k *Kernel) BanCollector() prometheus.Collector { return banCollector{k.dp} }

type banCollector struct{ dp *bpf.Datapath }

func (c banCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- kernelBannedDesc
	ch <- kernelBansDesc
}

func (c banCollector) Collect(ch chan<- prometheus.Metric) {
	if cs, err := c.dp.Counters(); err == nil {
		ch <- prometheus.MustNewConstMetric(kernelBannedDesc, prometheus.CounterValue, float64(cs[bpf.CounterBanned]))
	}
	if n, err := c.dp.BanCount(); err == nil {
		ch <- prometheus.MustNewConstMetric(kernelBansDesc, prometheus.GaugeValue, float64(n))
	}
}
