package mediarelay

import (
	"math"
	"testing"
)

func TestMOS(t *testing.T) {
	good := MOS(0, 2, 20)
	if good < 4.3 || good > 4.5 {
		t.Errorf("MOS(no loss, 2 ms jitter, 20 ms rtt) = %.3f, want 4.3-4.5", good)
	}
	lossy := MOS(5, 5, 40)
	if lossy >= 3.9 || lossy > good-0.4 {
		t.Errorf("MOS(5%% loss) = %.3f, want < 3.9 and well below %.3f", lossy, good)
	}
	prev := math.Inf(1)
	for loss := 0.0; loss <= 100; loss += 0.5 {
		m := MOS(loss, 10, 50)
		if m > prev {
			t.Fatalf("MOS rises with loss at %.1f%%: %.4f > %.4f", loss, m, prev)
		}
		prev = m
	}
	if MOS(0, 0, 2000) >= MOS(0, 0, 100) {
		t.Error("MOS does not fall with delay")
	}
	for _, in := range [][3]float64{{100, 1000, 10000}, {-5, -1, -1}, {math.NaN(), math.NaN(), math.NaN()}, {math.Inf(1), 0, 0}} {
		if m := MOS(in[0], in[1], in[2]); m < 1 || m > 4.5 || math.IsNaN(m) {
			t.Errorf("MOS(%v) = %v, outside 1..4.5", in, m)
		}
	}
	t.Logf("MOS: clean %.3f, 1%% %.3f, 5%% %.3f", good, MOS(1, 2, 20), MOS(5, 2, 20))
}
