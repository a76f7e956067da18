package sbc_test

import (
	"sync"
	"time"

	"github.com/edgesbc/edgesbc/sbc"
)

// fakeClock is the time the SBC's rate limiters and admission read
// (Options.Clock) when a test decides it: it stands still until Add, so
// a bucket refills when the test says, however slowly a loaded machine
// gets the packets through.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// option puts the clock in an SBC's Options.
func (c *fakeClock) option(o *sbc.Options) { o.Clock = c.Now }
