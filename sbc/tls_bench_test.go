package sbc_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// TestBenchTLSSetup measures call setup through the B2BUA on loopback
// with the caller on UDP, on one long-lived TLS connection per caller (a
// trunk), and on a new TLS connection per call (full handshake each time),
// interleaved, side by side. The callee is a UDP auto-answerer. Signaling
// only. SBC_BENCH_TLS=1 runs it (make bench-tls); SBC_BENCH_TLS_SECS,
// SBC_BENCH_TLS_ROUNDS and SBC_BENCH_TLS_WORKERS tune it.
func TestBenchTLSSetup(t *testing.T) {
	if os.Getenv("SBC_BENCH_TLS") == "" {
		t.Skip("SBC_BENCH_TLS=1 runs the TLS vs UDP call setup benchmark")
	}
	secs, workers, rounds := envInt("SBC_BENCH_TLS_SECS", 1), envInt("SBC_BENCH_TLS_WORKERS", 4), envInt("SBC_BENCH_TLS_ROUNDS", 6)
	pbx := testphone.NewLoopback(t)
	s := startTLSSBC(t, tlsOpts{pbx: pbx.Addr})
	stop := make(chan struct{})
	defer close(stop)
	go autoAnswer(pbx, stop)

	modes := []string{"udp", "tls-trunk", "tls-conn-per-call"}
	type result struct {
		calls, fails int
		lat          []time.Duration
	}
	res := map[string]*result{}
	for _, m := range modes {
		res[m] = &result{}
	}
	// Short rounds, the modes in turn: a noisy neighbour's burst lands
	// on every mode alike.
	for round := 0; round < rounds; round++ {
		for _, m := range modes {
			var mu sync.Mutex
			var wg sync.WaitGroup
			var seq atomic.Int64
			deadline := time.Now().Add(time.Duration(secs) * time.Second)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var calls, fails int
					var lat []time.Duration
					var trunk *testphone.StreamPhone
					udp := testphone.NewLoopback(t)
					for time.Now().Before(deadline) {
						cid := fmt.Sprintf("bench-%s-%d-%d", m, round, seq.Add(1))
						var d time.Duration
						var ok bool
						switch m {
						case "udp":
							d, ok = udpCall(udp, s, cid)
						case "tls-trunk":
							if trunk == nil {
								trunk = benchTLSPhone(t, s)
							}
							if trunk == nil {
								fails++
								continue
							}
							d, ok = tlsCall(trunk, s, cid)
						default: // the handshake counts in the setup time
							t0 := time.Now()
							p := benchTLSPhone(t, s)
							if p == nil {
								fails++
								continue
							}
							dial := time.Since(t0)
							d, ok = tlsCall(p, s, cid)
							d += dial
							p.Close()
						}
						if ok {
							calls++
							lat = append(lat, d)
						} else {
							fails++
						}
					}
					mu.Lock()
					res[m].calls += calls
					res[m].fails += fails
					res[m].lat = append(res[m].lat, lat...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			time.Sleep(100 * time.Millisecond)
		}
	}
	total := float64(rounds * secs)
	base := float64(res["udp"].calls) / total
	t.Logf("call setup through sbc on loopback, %d callers each, %d rounds of %d s per mode, interleaved (INVITE->200->ACK->BYE->200 per call):", workers, rounds, secs)
	t.Logf("%-18s %9s %8s %6s %12s %12s", "caller transport", "calls/s", "vs udp", "fails", "setup p50", "setup p99")
	for _, m := range modes {
		r := res[m]
		rate := float64(r.calls) / total
		t.Logf("%-18s %9.0f %7.2fx %6d %12v %12v", m, rate, rate/base, r.fails, pct(r.lat, 50), pct(r.lat, 99))
	}
	if res["udp"].calls == 0 || res["tls-trunk"].calls == 0 || res["tls-conn-per-call"].calls == 0 {
		t.Fatal("a mode completed no call")
	}
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[(len(d)-1)*p/100].Round(10 * time.Microsecond)
}

// autoAnswer answers every INVITE with 200 and every BYE with 200.
func autoAnswer(p *testphone.Phone, stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		m := p.Recv(100 * time.Millisecond)
		req, ok := m.(*sip.Request)
		if !ok {
			continue
		}
		switch req.Method {
		case sip.INVITE:
			p.Answer(req, 200, "OK", "pbx", testphone.TestSDP)
		case sip.BYE:
			p.Answer(req, 200, "OK", "", "")
		}
	}
}

func isRes(code int, method sip.RequestMethod) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == code && r.CSeq().MethodName == method
	}
}

func udpCall(p *testphone.Phone, s *tlsSBC, cid string) (time.Duration, bool) {
	start := time.Now()
	p.Invite(s.carrier, "1000", cid, testphone.TestSDP)
	ok, _ := p.Next(3*time.Second, isRes(200, sip.INVITE)).(*sip.Response)
	if ok == nil {
		return 0, false
	}
	setup := time.Since(start)
	d := testphone.CallerDialog(ok, s.carrier)
	p.Ack(d, 1, cid+"-ack")
	p.Request(d, "BYE", 2, cid+"-bye", "")
	return setup, p.Next(3*time.Second, isRes(200, sip.BYE)) != nil
}

func benchTLSPhone(t *testing.T, s *tlsSBC) *testphone.StreamPhone {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", s.carrierTLS, &tls.Config{RootCAs: s.ca.Pool})
	if err != nil {
		return nil
	}
	p := testphone.NewStream(t, "TLS", c.LocalAddr().String())
	p.Use(c)
	return p
}

func tlsCall(p *testphone.StreamPhone, s *tlsSBC, cid string) (time.Duration, bool) {
	start := time.Now()
	p.Invite("sip:1000@"+s.carrierTLS+";transport=tls", cid, testphone.TestSDP)
	ok, _ := p.Next(3*time.Second, isRes(200, sip.INVITE)).(*sip.Response)
	if ok == nil {
		return 0, false
	}
	setup := time.Since(start)
	d := testphone.CallerDialog(ok, "")
	p.Ack(nil, d, 1, cid+"-ack")
	p.Request(nil, d, "BYE", 2, cid+"-bye", "")
	return setup, p.Next(3*time.Second, isRes(200, sip.BYE)) != nil
}
