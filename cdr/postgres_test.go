package cdr_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/cdr"
	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/internal/pgtest"
)

func pgConfig(dsn, spool string) config.CDR {
	return config.CDR{Queue: 1000, Node: "n1", Postgres: &config.CDRPostgres{
		DSN: dsn, Table: "cdr", BatchSize: 10, BatchInterval: config.Duration(20 * time.Millisecond),
		ConnectTimeout: config.Duration(time.Second), SpoolDir: spool, SpoolMaxBytes: 1 << 20,
	}}
}

// storedIDs is every call_id in the table in the order stored.
func storedIDs(t *testing.T, db *pgx.Conn) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), "SELECT call_id FROM cdr ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestPostgresSpoolAndReplay: records reach a real server in batches; with
// the server stopped they go to the spool, and when it is back they are
// replayed in order, none lost and none twice; a spool left by a Writer
// that closed while the database was down is replayed by the next one.
func TestPostgresSpoolAndReplay(t *testing.T) {
	srv := pgtest.Start(t)
	spool := filepath.Join(t.TempDir(), "spool")
	reg := prometheus.NewRegistry()
	w, err := cdr.Open(pgConfig(srv.DSN, spool), cdr.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	db := srv.Conn(t)
	want := []string{}
	send := func(from, to int) {
		for i := from; i < to; i++ {
			w.Record(rec(i))
			want = append(want, rec(i).CallID)
		}
	}
	send(0, 20)
	waitFor(t, "20 records in the table", 5*time.Second, func() bool { return written(reg, "postgres") == 20 })
	if got := storedIDs(t, db); len(got) != 20 {
		t.Fatalf("%d rows, want 20", len(got))
	}
	var media string
	var answered *time.Time
	if err := db.QueryRow(context.Background(), "SELECT media->0->>'codec', answer_time FROM cdr WHERE call_id = $1", rec(3).CallID).Scan(&media, &answered); err != nil {
		t.Fatal(err)
	}
	if media != "pcmu" || answered == nil || !answered.Equal(rec(3).Answer) {
		t.Fatalf("row: codec %q answer %v", media, answered)
	}

	srv.Stop()
	send(20, 50)
	waitFor(t, "30 records spooled", 5*time.Second, func() bool { return gather(reg, "cdr_records_spooled_total", nil) == 30 })
	if gather(reg, "cdr_sink_errors_total", nil) == 0 {
		t.Error("database down and no sink error counted")
	}
	srv.Start()
	waitFor(t, "the spool replayed", 10*time.Second, func() bool { return written(reg, "postgres") == 50 })
	send(50, 55) // after the replay, straight in again
	waitFor(t, "55 written", 5*time.Second, func() bool { return written(reg, "postgres") == 55 })
	db = srv.Conn(t)
	checkStored(t, storedIDs(t, db), want)
	if b := gather(reg, "cdr_spool_bytes", nil); b != 0 {
		t.Errorf("spool holds %v bytes after the replay", b)
	}

	// Down again, and the Writer closes (sbcd stops) with records spooled:
	// the next Writer replays them.
	srv.Stop()
	send(55, 62)
	waitFor(t, "7 more spooled", 5*time.Second, func() bool { return gather(reg, "cdr_records_spooled_total", nil) == 37 })
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Start()
	reg2 := prometheus.NewRegistry()
	w2, err := cdr.Open(pgConfig(srv.DSN, spool), cdr.Options{Registerer: reg2})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close(context.Background())
	waitFor(t, "the old spool replayed", 10*time.Second, func() bool { return written(reg2, "postgres") == 7 })
	db = srv.Conn(t)
	checkStored(t, storedIDs(t, db), want)
	if d := gather(reg, "cdr_records_dropped_total", nil) + gather(reg2, "cdr_records_dropped_total", nil); d != 0 {
		t.Errorf("%v records dropped", d)
	}
}

func checkStored(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows stored, want %d (%v)", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d is %s, want %s: order lost", i, got[i], want[i])
		}
	}
}

// With the database gone, the spool fills to its bound and no further:
// what it cannot take is dropped and counted as spool_full.
func TestPostgresSpoolFull(t *testing.T) {
	spool := filepath.Join(t.TempDir(), "spool")
	reg := prometheus.NewRegistry()
	cfg := pgConfig("host=/nonexistent user=x connect_timeout=1", spool)
	w, err := cdr.Open(cfg, cdr.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 { // ~1.4 MB of records into a 1 MiB spool
		w.Record(rec(i))
		if i%500 == 0 {
			time.Sleep(20 * time.Millisecond) // let the queue drain: this is about the spool
		}
	}
	waitFor(t, "every record spooled or dropped", 5*time.Second, func() bool {
		return gather(reg, "cdr_records_spooled_total", nil)+gather(reg, "cdr_records_dropped_total", nil) == 3000
	})
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := gather(reg, "cdr_records_dropped_total", map[string]string{"reason": "spool_full"}); d == 0 {
		t.Fatal("spool over its bound and nothing dropped as spool_full")
	}
	if b := gather(reg, "cdr_spool_bytes", nil); b > 1<<20 || b < 900<<10 {
		t.Fatalf("spool bytes %v, want near its 1 MiB bound", b)
	}
}
