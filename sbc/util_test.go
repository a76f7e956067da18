package sbc

import (
	"testing"
	"time"
)

// Every 503 with a wait rounds it the same way: up, to at least a second.
func TestRetryAfterRounding(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "1", time.Millisecond: "1", time.Second: "1", 1500 * time.Millisecond: "2", 5 * time.Second: "5", 5*time.Second + 1: "6",
	} {
		if h := retryAfter(d); h.Name() != "Retry-After" || h.Value() != want {
			t.Errorf("retryAfter(%v) = %s: %s, want %s", d, h.Name(), h.Value(), want)
		}
	}
	if sideName(SideA) != "a" || sideName(SideB) != "b" {
		t.Errorf("side names %q %q, want a b", sideName(SideA), sideName(SideB))
	}
}
