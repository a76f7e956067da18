package policy

import (
	"net/netip"
	"testing"
	"time"
)

// The per-datagram costs of the read-filter stage.
func BenchmarkBannedHit(b *testing.B) {
	bans := NewBans(1 << 16)
	now := time.Now()
	for i := 0; i < 10000; i++ {
		bans.Ban(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), time.Hour, "rate", now)
	}
	a := netip.AddrFrom4([4]byte{10, 0, 0, 7})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !bans.Banned(a, now) {
				b.Fatal("not banned")
			}
		}
	})
}

func BenchmarkSourceLimiterAllow(b *testing.B) {
	l := NewSourceLimiter(1e9, 1e9, 1<<16)
	a := netip.MustParseAddr("203.0.113.10")
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.Allow(a, now)
	}
}

func BenchmarkScannersMatch(b *testing.B) {
	s := NewScanners([]string{"friendly-scanner", "sipvicious", "sipcli"})
	msg := []byte("INVITE sip:1000@203.0.113.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-1\r\nMax-Forwards: 70\r\nFrom: <sip:a@203.0.113.10>;tag=1\r\nTo: <sip:1000@203.0.113.1>\r\nCall-ID: bench\r\nCSeq: 1 INVITE\r\nContact: <sip:a@203.0.113.10>\r\nUser-Agent: Yealink SIP-T46S 66.86.0.15\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for i := 0; i < b.N; i++ {
		if s.Match(msg) {
			b.Fatal("match")
		}
	}
}
