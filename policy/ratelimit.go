package policy

import (
	"net/netip"
	"sync"
	"time"
)

// Clock is where the limiters' owners read the time: time.Now in
// production, a fake in tests, so that a bucket refills when the test says
// and not when a loaded machine happens to get round to the next packet.
// The limiters themselves take the time as an argument of every call.
type Clock func() time.Time

// Now is the clock's time, time.Now for a nil Clock.
func (c Clock) Now() time.Time {
	if c == nil {
		return time.Now()
	}
	return c()
}

// Bucket is a token bucket: Rate tokens a second up to Burst. Not safe for
// concurrent use on its own; its owners lock.
type Bucket struct {
	Rate   float64
	Burst  float64
	tokens float64
	last   time.Time
}

// NewBucket returns a full bucket.
func NewBucket(rate, burst float64, now time.Time) Bucket {
	return Bucket{Rate: rate, Burst: burst, tokens: burst, last: now}
}

func (b *Bucket) refill(now time.Time) {
	if b.last.IsZero() {
		b.last = now // a bucket made without a clock starts full now
		return
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(b.Burst, b.tokens+dt*b.Rate)
		b.last = now
	}
}

// Take removes one token if there is one.
func (b *Bucket) Take(now time.Time) bool {
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// Peek reports whether a token is there without taking it.
func (b *Bucket) Peek(now time.Time) bool {
	b.refill(now)
	return b.tokens >= 1
}

// Wait is how long until the next token.
func (b *Bucket) Wait(now time.Time) time.Duration {
	b.refill(now)
	if b.tokens >= 1 || b.Rate <= 0 {
		return 0
	}
	return time.Duration((1 - b.tokens) / b.Rate * float64(time.Second))
}

// full reports whether the bucket has refilled (an idle source).
func (b *Bucket) full(now time.Time) bool {
	b.refill(now)
	return b.tokens >= b.Burst
}

// SourceLimiter keeps one token bucket per source address. The table is
// bounded: past max sources, new ones share a single overflow bucket, so a
// flood from spoofed addresses is limited as a whole instead of growing
// the table. Idle sources (bucket full again) are swept by Sweep.
type SourceLimiter struct {
	rate, burst float64
	max         int

	mu       sync.Mutex
	buckets  map[netip.Addr]*Bucket
	overflow Bucket
}

// NewSourceLimiter allows rate requests/s per source with bursts of burst.
// A rate of 0 makes a limiter that allows everything.
func NewSourceLimiter(rate float64, burst, maxSources int) *SourceLimiter {
	return &SourceLimiter{
		rate: rate, burst: float64(burst), max: maxSources,
		buckets:  map[netip.Addr]*Bucket{},
		overflow: Bucket{Rate: rate, Burst: float64(burst), tokens: float64(burst)},
	}
}

// Allow takes a token from src's bucket.
func (l *SourceLimiter) Allow(src netip.Addr, now time.Time) bool {
	if l == nil || l.rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[src]
	if !ok {
		if len(l.buckets) >= l.max {
			return l.overflow.Take(now)
		}
		nb := NewBucket(l.rate, l.burst, now)
		b = &nb
		l.buckets[src] = b
	}
	return b.Take(now)
}

// Sweep forgets sources whose bucket has refilled; it returns how many
// are still tracked.
func (l *SourceLimiter) Sweep(now time.Time) int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for a, b := range l.buckets {
		if b.full(now) {
			delete(l.buckets, a)
		}
	}
	return len(l.buckets)
}

// Strikes counts bad events per source within a window (failed digest
// answers, malformed messages, requests over the bucket) and says when a
// source reaches its threshold. Bounded like SourceLimiter: past max
// sources, new sources are not counted (they are still rate limited).
type Strikes struct {
	window time.Duration
	max    int

	mu     sync.Mutex
	counts map[strikeKey]*strikeCount
}

type strikeKey struct {
	src  netip.Addr
	kind string
}

type strikeCount struct {
	n     int
	start time.Time
}

// NewStrikes counts within window, tracking at most max (source, kind) pairs.
func NewStrikes(window time.Duration, max int) *Strikes {
	return &Strikes{window: window, max: max, counts: map[strikeKey]*strikeCount{}}
}

// Add records one strike of a kind and reports whether src has reached
// threshold (0: never) within the window. The count restarts after a hit.
func (s *Strikes) Add(src netip.Addr, kind string, threshold int, now time.Time) bool {
	if threshold <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := strikeKey{src, kind}
	c, ok := s.counts[k]
	if !ok || now.Sub(c.start) > s.window {
		if !ok && len(s.counts) >= s.max {
			return false
		}
		c = &strikeCount{start: now}
		s.counts[k] = c
	}
	c.n++
	if c.n >= threshold {
		delete(s.counts, k)
		return true
	}
	return false
}

// Sweep drops counts older than the window.
func (s *Strikes) Sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.counts {
		if now.Sub(c.start) > s.window {
			delete(s.counts, k)
		}
	}
}
