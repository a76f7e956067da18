package cdr

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/config"
)

// sink is one destination. A sink's methods run on its own goroutine
// only, so it needs no lock.
type sink interface {
	name() string
	// write takes records in order.
	write(recs []Record)
	// tick runs every tickEvery: batched fsync, retries, rotation by age.
	tick(now time.Time)
	// close flushes what it holds, as durably as it can, and releases it.
	close()
}

// maxBatch bounds how many queued records a sink takes at once.
const maxBatch = 512

// Writer fans records out to its sinks, each behind its own bounded
// queue, so a slow database never holds up the file, and nothing holds up
// the caller.
type Writer struct {
	log  *slog.Logger
	node string
	m    *metrics

	mu     sync.RWMutex // guards closed against the sends in Record
	closed bool
	queues []chan Record
	sinks  []sink
	done   sync.WaitGroup

	alarm alarm
}

// Options are a Writer's parts that are not configuration.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Node names this SBC in records that carry none; the host name when
	// empty and the config names none.
	Node string
	// TickEvery overrides the sinks' tick (tests); 0 is the default.
	TickEvery time.Duration
}

// Open opens the sinks the config names and starts their goroutines. The
// file sink must open; the database need not be up (records spool until
// it is).
func Open(cfg config.CDR, opt Options) (*Writer, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	w := &Writer{log: opt.Logger, node: cfg.Node, m: newMetrics(opt.Registerer)}
	if w.node == "" {
		w.node = opt.Node
	}
	if w.node == "" {
		w.node, _ = os.Hostname()
	}
	w.alarm.log = w.log
	var sinks []sink
	if cfg.File != nil {
		f, err := openFileSink(*cfg.File, w.m, w.log)
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, f)
	}
	if cfg.Postgres != nil {
		p, err := openPGSink(*cfg.Postgres, w.m, w.log, &w.alarm)
		if err != nil {
			for _, s := range sinks {
				s.close()
			}
			return nil, err
		}
		sinks = append(sinks, p)
	}
	if len(sinks) == 0 {
		return nil, fmt.Errorf("cdr: no sink configured")
	}
	tick := opt.TickEvery
	for _, s := range sinks {
		q := make(chan Record, cfg.Queue)
		w.queues = append(w.queues, q)
		w.sinks = append(w.sinks, s)
		w.m.queued(s.name(), q)
		every := tick
		if every == 0 {
			every = tickFor(cfg, s)
		}
		w.done.Add(1)
		go w.run(s, q, every)
	}
	return w, nil
}

// tickFor is how often a sink is ticked: its batch interval, bounded.
func tickFor(cfg config.CDR, s sink) time.Duration {
	switch s.(type) {
	case *fileSink:
		if cfg.File.Fsync == "batch" {
			return cfg.File.FsyncInterval.Std()
		}
	case *pgSink:
		return cfg.Postgres.BatchInterval.Std()
	}
	return time.Second
}

// Record queues r for every sink and returns at once; a full queue drops
// the record for that sink, counted and alarmed.
func (w *Writer) Record(r Record) {
	if r.ID == "" {
		r.ID = NewID()
	}
	if r.Node == "" {
		r.Node = w.node
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	for i, q := range w.queues {
		name := w.sinks[i].name()
		if w.closed {
			w.m.dropped.WithLabelValues(name, "closed").Inc()
			continue
		}
		select {
		case q <- r:
		default:
			w.m.dropped.WithLabelValues(name, "queue_full").Inc()
			w.alarm.raise("cdr queue full: record dropped", "sink", name, "queue", cap(q))
		}
	}
}

func (w *Writer) run(s sink, q chan Record, every time.Duration) {
	defer w.done.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	batch := make([]Record, 0, maxBatch)
	for {
		select {
		case r, ok := <-q:
			if !ok {
				s.close()
				return
			}
			batch = append(batch[:0], r)
		more:
			for len(batch) < maxBatch {
				select {
				case r, ok := <-q:
					if !ok {
						break more
					}
					batch = append(batch, r)
				default:
					break more
				}
			}
			s.write(batch)
		case now := <-t.C:
			s.tick(now)
		}
	}
}

// Close stops taking records, lets each sink write what is queued and
// flush (file synced, database written or spooled), bounded by ctx.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	for _, q := range w.queues {
		close(q)
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.done.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cdr: sinks still flushing: %w", ctx.Err())
	}
}

// alarm logs a loss loudly but at most once per alarmEvery, with how many
// happened since the last line: a full queue under load must not become a
// log storm, nor silent.
type alarm struct {
	log   *slog.Logger
	mu    sync.Mutex
	last  time.Time
	count atomic.Int64
}

const alarmEvery = 10 * time.Second

func (a *alarm) raise(msg string, attrs ...any) {
	n := a.count.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	if now := time.Now(); now.Sub(a.last) >= alarmEvery {
		a.last = now
		a.count.Store(0)
		a.log.Error(msg, append(attrs, "alarm", "cdr_loss", "since_last", n)...)
	}
}

type metrics struct {
	written, spooled, errors *prometheus.CounterVec
	dropped                  *prometheus.CounterVec
	spoolBytes               prometheus.Gauge
	reg                      prometheus.Registerer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdr_records_written_total", Help: "Call records durably written, by sink (the file synced as its fsync policy says, the database committed).",
		}, []string{"sink"}),
		spooled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdr_records_spooled_total", Help: "Call records put in the on-disk spool while the database was unreachable.",
		}, []string{"sink"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdr_sink_errors_total", Help: "Failed writes, syncs, rotations, connections and inserts, by sink.",
		}, []string{"sink"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cdr_records_dropped_total", Help: "Call records lost, by sink and reason (queue_full, spool_full, write_error, closed).",
		}, []string{"sink", "reason"}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cdr_spool_bytes", Help: "Bytes of call records waiting in the spool for the database.",
		}),
		reg: reg,
	}
	if reg != nil {
		reg.MustRegister(m.written, m.spooled, m.errors, m.dropped, m.spoolBytes)
	}
	return m
}

// queued exports a sink's queue length.
func (m *metrics) queued(name string, q chan Record) {
	if m.reg == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cdr_queue_length", Help: "Call records waiting for the sink.", ConstLabels: prometheus.Labels{"sink": name},
	}, func() float64 { return float64(len(q)) }))
}
