package mediarelay

import "testing"

// feed runs seqs through a fresh rtpStats, timestamps 160 apart and
// arriving on time.
func feed(seqs ...int) *rtpStats {
	var s rtpStats
	for _, q := range seqs {
		s.update(rtpHeader{seq: uint16(q), ts: uint32(q * 160), ssrc: 1}, uint32(q*160))
	}
	return &s
}

func seqRange(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestRTPLost(t *testing.T) {
	tests := []struct {
		name string
		seqs []int
		lost int64
	}{
		{"in order", seqRange(0, 100), 0},
		{"gap of 5", append(seqRange(0, 50), seqRange(55, 100)...), 5},
		{"two gaps", append(append(seqRange(0, 10), seqRange(12, 20)...), seqRange(23, 30)...), 5},
		{"wrap", seqRange(65500, 65600), 0},
		{"wrap with gap", append(seqRange(65500, 65530), seqRange(65540, 65600)...), 10},
		{"duplicate", append(seqRange(0, 10), 9, 10, 11), -1},
		{"reordered", []int{0, 1, 2, 4, 3, 5, 6}, 0},
		{"restart after a big jump", append(seqRange(0, 10), seqRange(30000, 30010)...), 0},
		{"single packet on probation", []int{7}, 0},
	}
	for _, tt := range tests {
		if got := feed(tt.seqs...).lost(); got != tt.lost {
			t.Errorf("%s: lost = %d, want %d", tt.name, got, tt.lost)
		}
	}
}

func TestRTPSSRCChangeKeepsLoss(t *testing.T) {
	s := feed(append(seqRange(0, 10), seqRange(13, 20)...)...)
	for q := range 10 {
		s.update(rtpHeader{seq: uint16(500 + q), ts: 0, ssrc: 2}, 0)
	}
	if s.lost() != 3 {
		t.Fatalf("lost after SSRC change = %d, want 3", s.lost())
	}
}

func TestRTPJitter(t *testing.T) {
	s := feed(seqRange(0, 100)...)
	if j := s.jitterMs(8000); j != 0 {
		t.Fatalf("on-time packets: jitter %v ms", j)
	}
	// Every packet 10 ms (80 units) late relative to its predecessor's
	// spacing, alternating: |D| = 80 each time, J converges to 10 ms.
	var st rtpStats
	for q := range 300 {
		arrival := uint32(q*160 + (q%2)*80)
		st.update(rtpHeader{seq: uint16(q), ts: uint32(q * 160), ssrc: 1}, arrival)
	}
	if j := st.jitterMs(8000); j < 9.9 || j > 10.01 {
		t.Fatalf("alternating 10 ms: jitter %v ms, want ~10", j)
	}
	if tsUnits(1500*1e6, 8000) != 12000 || tsUnits(100*24*3600*1e9, 48000) != uint32(100*24*3600*48000%(1<<32)) {
		t.Fatal("tsUnits")
	}
}
