package api

import "time"

// History is GET /api/v1/history: sbcd's own samples of its load and
// quality over the last hour, oldest first, for the dashboard's charts.
type History struct {
	// IntervalS is the time between points in seconds; Capacity how many
	// points are kept (the rest are dropped oldest first).
	IntervalS float64        `json:"interval_s"`
	Capacity  int            `json:"capacity"`
	Points    []HistoryPoint `json:"points"`
}

// HistoryPoint is one sample: rates over the interval that ends at Time,
// levels at Time.
type HistoryPoint struct {
	Time time.Time `json:"time"`
	// CPS is new calls per second (INVITEs that reached admission,
	// shed ones included); ShedPS the calls per second refused for load
	// (admission limits, every trunk full).
	CPS    float64 `json:"cps"`
	ShedPS float64 `json:"shed_ps"`
	Active int     `json:"active"`
	// MOS is the mean estimate over the calls with media, MOSMin the
	// worst; both 0 with no media.
	MOS    float64 `json:"mos"`
	MOSMin float64 `json:"mos_min"`
}
