package hep

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config is where and how packets go.
type Config struct {
	Address   string // host:port of the collector
	Transport string // "udp" (default) or "tcp"
	CaptureID uint32
	Password  string // the auth key chunk, when set
	QueueSize int    // packets waiting to be sent; 1024 when 0
}

// Stats are the client's counters since it started.
type Stats struct {
	Queued  uint64 // accepted into the queue
	Sent    uint64 // written to the collector
	Dropped uint64 // refused: queue full, too large, or client closed
	Errors  uint64 // lost on a failed write (TCP: then reconnected)
}

// Client sends HEP packets to one collector. Send never blocks: it
// encodes the packet and queues it, or counts it dropped when the queue is
// full. One goroutine writes the queue out; over TCP it reconnects with a
// backoff after a failure, and packets that arrive meanwhile fill the
// queue and are dropped past its size, counted.
type Client struct {
	cfg   Config
	log   *slog.Logger
	queue chan []byte
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	queued, sent, dropped, errs atomic.Uint64
	closed                      atomic.Bool

	// dial and the timings are fields so tests can shorten them.
	dial         func(network, addr string) (net.Conn, error)
	writeTimeout time.Duration
	backoffMax   time.Duration
}

// New starts a client. The collector need not be up: UDP needs nothing
// from it, TCP connects (and reconnects) in the background.
func New(cfg Config, log *slog.Logger) (*Client, error) {
	switch cfg.Transport {
	case "":
		cfg.Transport = "udp"
	case "udp", "tcp":
	default:
		return nil, fmt.Errorf("hep: transport %q is neither udp nor tcp", cfg.Transport)
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		return nil, fmt.Errorf("hep: collector address %q: %w", cfg.Address, err)
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if log == nil {
		log = slog.Default()
	}
	c := &Client{
		cfg: cfg, log: log.With("hep", cfg.Address),
		queue: make(chan []byte, cfg.QueueSize), done: make(chan struct{}),
		dial:         func(n, a string) (net.Conn, error) { return net.DialTimeout(n, a, 2*time.Second) },
		writeTimeout: 2 * time.Second, backoffMax: 5 * time.Second,
	}
	c.wg.Add(1)
	go c.run()
	return c, nil
}

// CaptureID is the capture agent ID the client was configured with.
func (c *Client) CaptureID() uint32 { return c.cfg.CaptureID }

// Send encodes p (with the client's capture ID and auth key) and queues
// it; it says whether it was queued. p.Payload is copied: the caller may
// reuse it at once.
func (c *Client) Send(p Packet) bool {
	if c.closed.Load() {
		c.dropped.Add(1)
		return false
	}
	p.CaptureID, p.AuthKey = c.cfg.CaptureID, c.cfg.Password
	b, err := p.Append(make([]byte, 0, p.Size()))
	if err != nil {
		c.dropped.Add(1)
		return false
	}
	select {
	case c.queue <- b:
		c.queued.Add(1)
		return true
	default:
		c.dropped.Add(1)
		return false
	}
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	return Stats{Queued: c.queued.Load(), Sent: c.sent.Load(), Dropped: c.dropped.Load(), Errors: c.errs.Load()}
}

// Close stops the client. What is queued is still written for at most
// flush (none is lost to a collector that keeps up); what is left after is
// counted dropped.
func (c *Client) Close(flush time.Duration) {
	c.once.Do(func() {
		c.closed.Store(true)
		t := time.AfterFunc(flush, func() { close(c.done) })
		select {
		case c.queue <- nil: // after every packet queued before Close: the writer ends there
		case <-c.done: // the queue stayed full for all of flush
		}
		c.wg.Wait()
		if t.Stop() {
			close(c.done)
		}
		for {
			select {
			case b := <-c.queue:
				if b != nil {
					c.dropped.Add(1)
				}
			default:
				return
			}
		}
	})
}

func (c *Client) run() {
	defer c.wg.Done()
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	backoff := 100 * time.Millisecond
	failing := false // a write failed: log again only after one succeeds
	for {
		var b []byte
		select {
		case b = <-c.queue:
		case <-c.done:
			return
		}
		if b == nil {
			return // Close's marker
		}
		for conn == nil {
			var err error
			if conn, err = c.dial(c.cfg.Transport, c.cfg.Address); err == nil {
				backoff = 100 * time.Millisecond
				break
			}
			conn = nil
			c.log.Warn("HEP collector unreachable", "error", err, "retry", backoff)
			select {
			case <-time.After(backoff):
			case <-c.done:
				c.dropped.Add(1)
				return
			}
			backoff = min(2*backoff, c.backoffMax)
		}
		if c.cfg.Transport == "tcp" {
			_ = conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		}
		if _, err := conn.Write(b); err != nil {
			c.errs.Add(1)
			if !failing {
				c.log.Warn("HEP write failed", "error", err)
				failing = true
			}
			if c.cfg.Transport == "tcp" {
				conn.Close() // a partial write leaves the stream out of frame
				conn = nil
			}
			continue
		}
		c.sent.Add(1)
		failing = false
	}
}
