package cdr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/edgesbc/edgesbc/config"
)

// Schema is the table the PostgreSQL sink creates on start (%s is the
// table name, cdr.postgres.table). id is the record's unique ID: a record
// replayed from the spool after a crash is stored once. seq gives the
// order records were stored in; media holds the per-stream array as JSON.
const Schema = `CREATE TABLE IF NOT EXISTS %[1]s (
	id          text PRIMARY KEY,
	seq         bigserial,
	call_id     text NOT NULL,
	node        text NOT NULL DEFAULT '',
	start_time  timestamptz NOT NULL,
	answer_time timestamptz,
	end_time    timestamptz NOT NULL,
	duration_ms bigint NOT NULL DEFAULT 0,
	a_call_id   text NOT NULL,
	a_peer      text NOT NULL DEFAULT '',
	b_call_id   text,
	b_peer      text,
	caller_received text NOT NULL DEFAULT '',
	caller_sent     text NOT NULL DEFAULT '',
	callee_received text NOT NULL DEFAULT '',
	callee_sent     text NOT NULL DEFAULT '',
	route       text NOT NULL DEFAULT '',
	trunk       text NOT NULL DEFAULT '',
	realm_in    text NOT NULL DEFAULT '',
	realm_out   text NOT NULL DEFAULT '',
	attempts    integer NOT NULL DEFAULT 0,
	status      text NOT NULL,
	result      text NOT NULL DEFAULT '',
	ended_by    text NOT NULL DEFAULT '',
	sip_code    integer,
	sip_reason  text,
	q850_cause  integer,
	media       jsonb
);
CREATE INDEX IF NOT EXISTS %[2]s ON %[1]s (start_time)`

const insertSQL = `INSERT INTO %s (id, call_id, node, start_time, answer_time, end_time, duration_ms,
	a_call_id, a_peer, b_call_id, b_peer, caller_received, caller_sent, callee_received, callee_sent,
	route, trunk, realm_in, realm_out, attempts, status, result, ended_by, sip_code, sip_reason, q850_cause, media)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27)
ON CONFLICT (id) DO NOTHING`

// retryEvery spaces reconnection attempts while the database is down.
const retryEvery = time.Second

// pgSink inserts records in batches. While the database is unreachable
// (or once the spool holds anything, to keep the order) records go to the
// on-disk spool, which is replayed oldest first when it is back.
type pgSink struct {
	cfg   config.CDRPostgres
	m     *metrics
	log   *slog.Logger
	alarm *alarm
	table string

	conn      *pgx.Conn
	pending   []Record
	spool     *spool
	nextTry   time.Time
	down      bool
	lastFlush time.Time
}

func openPGSink(cfg config.CDRPostgres, m *metrics, log *slog.Logger, a *alarm) (*pgSink, error) {
	if _, err := pgx.ParseConfig(cfg.DSN); err != nil {
		return nil, fmt.Errorf("cdr.postgres.dsn: %w", err)
	}
	sp, err := openSpool(cfg.SpoolDir, cfg.SpoolMaxBytes)
	if err != nil {
		return nil, err
	}
	p := &pgSink{cfg: cfg, m: m, log: log, alarm: a, spool: sp, table: pgx.Identifier{cfg.Table}.Sanitize()}
	m.spoolBytes.Set(float64(sp.size))
	if !sp.empty() {
		log.Warn("cdr spool holds records from before: replaying them first", "dir", cfg.SpoolDir, "bytes", sp.size)
	}
	// Connect (and create the table) at once when the database is up;
	// when it is not, records spool until it is.
	p.retry(time.Now())
	return p, nil
}

func (p *pgSink) name() string { return "postgres" }

func (p *pgSink) write(recs []Record) {
	p.pending = append(p.pending, recs...)
	if len(p.pending) >= p.cfg.BatchSize {
		p.flush(time.Now())
	}
}

func (p *pgSink) tick(now time.Time) {
	if now.Sub(p.lastFlush) >= p.cfg.BatchInterval.Std() || len(p.pending) >= p.cfg.BatchSize {
		p.flush(now)
	}
	if (p.down || !p.spool.empty()) && !now.Before(p.nextTry) {
		p.retry(now)
	}
}

// flush stores the pending records: in the database when it is up and
// nothing is spooled before them, else at the spool's end.
func (p *pgSink) flush(now time.Time) {
	p.lastFlush = now
	if len(p.pending) == 0 {
		return
	}
	if p.spool.empty() && !p.down {
		for len(p.pending) > 0 {
			n := min(len(p.pending), p.cfg.BatchSize)
			if err := p.insert(p.pending[:n]); err != nil {
				p.failed(err, now)
				break
			}
			p.m.written.WithLabelValues("postgres").Add(float64(n))
			p.pending = p.pending[n:]
		}
		if len(p.pending) == 0 {
			p.pending = nil
			return
		}
	}
	p.toSpool()
}

// toSpool moves the pending records to the spool; those it cannot take
// are dropped, counted and alarmed.
func (p *pgSink) toSpool() {
	taken, err := p.spool.append(p.pending)
	p.m.spooled.WithLabelValues("postgres").Add(float64(taken))
	p.m.spoolBytes.Set(float64(p.spool.size))
	if lost := len(p.pending) - taken; lost > 0 {
		reason := "spool_full"
		if !errors.Is(err, ErrSpoolFull) {
			reason = "write_error"
			p.m.errors.WithLabelValues("postgres").Inc()
		}
		p.m.dropped.WithLabelValues("postgres", reason).Add(float64(lost))
		p.alarm.raise("cdr spool cannot take records: dropped", "sink", "postgres", "dir", p.cfg.SpoolDir,
			"records", lost, "spool_bytes", p.spool.size, "error", err)
	}
	p.pending = nil
}

func (p *pgSink) failed(err error, now time.Time) {
	p.m.errors.WithLabelValues("postgres").Inc()
	if !p.down {
		p.log.Error("cdr database unreachable: spooling records", "error", err, "spool", p.cfg.SpoolDir)
	}
	p.down = true
	p.nextTry = now.Add(retryEvery)
	if p.conn != nil {
		_ = p.conn.Close(context.Background())
		p.conn = nil
	}
}

// retry connects when needed and replays the spool, oldest segment
// first; a segment is deleted once all of it is in.
func (p *pgSink) retry(now time.Time) {
	if err := p.connect(); err != nil {
		p.failed(err, now)
		return
	}
	for !p.spool.empty() {
		recs, bad, err := p.spool.oldest()
		if bad > 0 {
			p.m.errors.WithLabelValues("postgres").Inc()
			p.log.Warn("cdr spool: unreadable lines skipped (a write cut short)", "lines", bad)
		}
		if err != nil {
			p.m.errors.WithLabelValues("postgres").Inc()
			p.log.Error("cdr spool unreadable", "error", err)
			p.nextTry = now.Add(retryEvery)
			return
		}
		for i := 0; i < len(recs); i += p.cfg.BatchSize {
			batch := recs[i:min(i+p.cfg.BatchSize, len(recs))]
			if err := p.insert(batch); err != nil {
				p.failed(err, now)
				return
			}
		}
		if err := p.spool.dropOldest(); err != nil {
			p.m.errors.WithLabelValues("postgres").Inc()
			p.log.Error("cdr spool segment not deleted", "error", err)
			p.nextTry = now.Add(retryEvery)
			return
		}
		p.m.written.WithLabelValues("postgres").Add(float64(len(recs)))
		p.m.spoolBytes.Set(float64(p.spool.size))
	}
	if p.down {
		p.log.Info("cdr database back: spool replayed")
	}
	p.down = false
}

func (p *pgSink) connect() error {
	if p.conn != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.ConnectTimeout.Std())
	defer cancel()
	conn, err := pgx.Connect(ctx, p.cfg.DSN)
	if err != nil {
		return fmt.Errorf("cdr database connect: %w", err)
	}
	idx := pgx.Identifier{p.cfg.Table + "_start_time_idx"}.Sanitize()
	if _, err := conn.Exec(ctx, fmt.Sprintf(Schema, p.table, idx)); err != nil {
		_ = conn.Close(context.Background())
		return fmt.Errorf("cdr table %s: %w", p.cfg.Table, err)
	}
	p.conn = conn
	return nil
}

// insert writes recs in one round trip, all or nothing.
func (p *pgSink) insert(recs []Record) error {
	if err := p.connect(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.ConnectTimeout.Std()+time.Duration(len(recs))*time.Millisecond)
	defer cancel()
	q := fmt.Sprintf(insertSQL, p.table)
	b := &pgx.Batch{}
	for i := range recs {
		args, err := insertArgs(&recs[i])
		if err != nil {
			return err
		}
		b.Queue(q, args...)
	}
	tx, err := p.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("cdr insert: %w", err)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		_ = tx.Rollback(context.Background())
		return fmt.Errorf("cdr insert: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("cdr insert commit: %w", err)
	}
	return nil
}

func insertArgs(r *Record) ([]any, error) {
	var media []byte
	if len(r.Media) > 0 {
		var err error
		if media, err = json.Marshal(r.Media); err != nil {
			return nil, err
		}
	}
	var answer, bCID, bPeer, sipCode, sipReason, q850 any
	if !r.Answer.IsZero() {
		answer = r.Answer
	}
	if r.B != nil {
		bCID, bPeer = r.B.CallID, r.B.Peer
	}
	if r.SIPCode != 0 {
		sipCode, sipReason = r.SIPCode, r.SIPReason
	}
	if r.Q850 != 0 {
		q850 = r.Q850
	}
	var mediaArg any
	if media != nil {
		mediaArg = string(media)
	}
	return []any{r.ID, r.CallID, r.Node, r.Start, answer, r.End, r.DurationMs,
		r.A.CallID, r.A.Peer, bCID, bPeer, r.Caller.Received, r.Caller.Sent, r.Callee.Received, r.Callee.Sent,
		r.Route, r.Trunk, r.RealmIn, r.RealmOut, r.Attempts, r.Status, r.Result, r.EndedBy, sipCode, sipReason, q850, mediaArg}, nil
}

func (p *pgSink) close() {
	p.flush(time.Now())
	p.spool.close()
	if p.conn != nil {
		_ = p.conn.Close(context.Background())
		p.conn = nil
	}
}
