package sbc

import "math"

// CallCounts are the figures the dashboard's history samples (cmd/sbcd
// feeds them to dashboard.History): counters since start and levels now.
type CallCounts struct {
	// Offered counts new INVITEs that passed the ACL and digest auth and
	// reached admission; Shed those refused for load: 503 from an
	// admission limit, from overload control (overload.go), or every
	// trunk of the route full.
	Offered, Shed uint64
	Active        int
	// MOS is the mean estimate over the active calls with media, MOSMin
	// the worst; 0 when no call has media.
	MOS, MOSMin float64
}

// CallCounts reads the counters and walks the call table once for the
// MOS figures (a lock per call: cheap at one sample every few seconds).
func (s *SBC) CallCounts() CallCounts {
	out := CallCounts{Offered: s.guard.offered.Load(), Shed: s.guard.shed.Load()}
	calls := s.calls.snapshot()
	out.Active = len(calls)
	mi, ok := s.media.(mediaInfo)
	if !ok {
		return out
	}
	sum, n, low := 0.0, 0, math.Inf(1)
	for _, c := range calls {
		if m, ok := mi.Media(c.ID); ok && m.MOS > 0 {
			sum += m.MOS
			n++
			low = math.Min(low, m.MOS)
		}
	}
	if n > 0 {
		out.MOS = math.Round(sum/float64(n)*100) / 100
		out.MOSMin = low
	}
	return out
}
