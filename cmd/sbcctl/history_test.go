package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/api"
)

func TestPrintHistory(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 1, 0, 0, 0, time.Local)
	h := api.History{IntervalS: 10, Capacity: 360, Points: []api.HistoryPoint{
		{Time: t0, CPS: 12.5, ShedPS: 0.3, Active: 420, MOS: 4.31, MOSMin: 3.02},
		{Time: t0.Add(10 * time.Second), Active: 0},
	}}
	var out bytes.Buffer
	if err := printHistory(&out, h); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"01:00:00", "12.5", "420", "0.3", "4.31", "3.02", "01:00:10", "2 points, one every 10s (360 kept)"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if lines := strings.Split(strings.TrimSpace(s), "\n"); len(lines) != 4 || !strings.HasSuffix(strings.TrimSpace(lines[2]), "-") {
		t.Errorf("want a header, two points (the second without MOS: -) and a total:\n%s", s)
	}
}
