// Command hanode is a test node for ha/'s multi-process tests: a Raft
// voter (ha.Node) that holds the VIPs while it is the effective leader,
// like an SBC node does, with a small HTTP API to write, read and measure.
// It is not shipped; sbcd is the real daemon (sbcd -role witness is the
// witness these tests run beside it).
//
//	hanode -id a -data DIR -peers a=192.0.2.2:7000,b=...,w=... -vip ext0=203.0.113.1/24 -http 127.0.0.1:9000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgesbc/edgesbc/ha"
)

func main() {
	id := flag.String("id", "", "node ID")
	data := flag.String("data", "", "data dir")
	peers := flag.String("peers", "", "id=ip:port,... (all voters)")
	vips := flag.String("vip", "", "iface=addr/len,... held while leader")
	httpAddr := flag.String("http", "127.0.0.1:9000", "HTTP API")
	hb := flag.Duration("heartbeat", 0, "raft heartbeat timeout (0: default)")
	segment := flag.Int("wal-segment", 0, "WAL segment size in bytes (0: 64 MiB)")
	trailing := flag.Uint64("trailing-logs", 0, "log entries kept after a snapshot (0: raft's default)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", *id)

	cfg := ha.Config{NodeID: *id, DataDir: *data, Logger: log, HeartbeatTimeout: *hb, TrailingLogs: *trailing, WALSegmentSize: *segment}
	for _, p := range splitList(*peers) {
		k, v, _ := strings.Cut(p, "=")
		cfg.Peers = append(cfg.Peers, ha.Peer{ID: k, Addr: v})
	}
	var vs []ha.VIP
	for _, p := range splitList(*vips) {
		k, v, _ := strings.Cut(p, "=")
		pf, err := netip.ParsePrefix(v)
		if err != nil {
			fatal(log, "bad -vip", err)
		}
		vs = append(vs, ha.VIP{Iface: k, Prefix: pf})
	}
	n, err := ha.Open(cfg)
	if err != nil {
		fatal(log, "open", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		_ = ha.Follow(ctx, n, vs, ha.Hooks{
			Serve: func() { log.Info("took VIPs") },
			Stop:  func() { log.Info("released VIPs") },
		})
	}()

	mux := http.NewServeMux()
	mux.Handle("GET /status", n)
	mux.HandleFunc("GET /vips", func(w http.ResponseWriter, _ *http.Request) {
		held := 0
		for _, v := range vs {
			if ok, _ := ha.HoldsVIP(v); ok {
				held++
			}
		}
		fmt.Fprintln(w, held)
	})
	mux.HandleFunc("POST /snapshot", func(w http.ResponseWriter, _ *http.Request) {
		if err := n.Snapshot(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, n.Status().SnapshotIndex)
	})
	mux.HandleFunc("GET /len", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, n.Len()) })
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		v, ok := n.Get(r.URL.Query().Get("key"))
		if !ok {
			http.Error(w, "no such key", http.StatusNotFound)
			return
		}
		_, _ = w.Write(v)
	})
	// POST /fill?prefix=p&n=N&conc=C&size=S&mode=batched|unbatched writes
	// N records p/0..p/N-1 (value "p/i" padded to S bytes) from C writers
	// and reports latency percentiles and throughput.
	mux.HandleFunc("POST /fill", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		count, _ := strconv.Atoi(q.Get("n"))
		conc, _ := strconv.Atoi(q.Get("conc"))
		size, _ := strconv.Atoi(q.Get("size"))
		res, err := fill(n, q.Get("prefix"), count, max(conc, 1), size, q.Get("mode") == "unbatched")
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, ha.ErrNotLeader) {
				code = http.StatusConflict
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	})
	srv := &http.Server{Addr: *httpAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fatal(log, "http", err)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = srv.Close()
	cancel()
	<-followed // VIPs released
	_ = n.Close()
}

// FillResult is what /fill reports.
type FillResult struct {
	N          int     `json:"n"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	MaxMS      float64 `json:"max_ms"`
	LogEntries uint64  `json:"log_entries"`
}

func fill(n *ha.Node, prefix string, count, conc, size int, unbatched bool) (FillResult, error) {
	lat := make([]time.Duration, count)
	next := make(chan int, count)
	for i := 0; i < count; i++ {
		next <- i
	}
	close(next)
	before := n.Status().LastIndex
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for c := 0; c < conc; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				key := fmt.Sprintf("%s/%d", prefix, i)
				val := []byte(key)
				if len(val) < size {
					val = append(val, make([]byte, size-len(val))...)
				}
				t0 := time.Now()
				var err error
				if unbatched {
					err = n.PutUnbatched(key, val)
				} else {
					err = n.Put(key, val)
				}
				lat[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("put %s: %w", key, err)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if firstErr != nil {
		return FillResult{}, firstErr
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r := FillResult{N: count, Seconds: el.Seconds(), LogEntries: n.Status().LastIndex - before}
	if count > 0 {
		r.PerSecond = float64(count) / el.Seconds()
		r.P50MS, r.P99MS, r.MaxMS = ms(lat[count/2]), ms(lat[count*99/100]), ms(lat[count-1])
	}
	return r, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func fatal(log *slog.Logger, msg string, err error) {
	log.Error(msg, "error", err)
	os.Exit(1)
}
