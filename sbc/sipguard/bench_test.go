package sipguard

import "testing"

func BenchmarkCheckInvite(b *testing.B) {
	msg := []byte(invite)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if v := Check(msg, Limits{}); v.Action != Accept {
			b.Fatal(v)
		}
	}
}

func BenchmarkStatelessResponse(b *testing.B) {
	msg := []byte(without(invite, "To"))
	b.ReportAllocs()
	for b.Loop() {
		if StatelessResponse(msg, 400, "Missing To") == nil {
			b.Fatal("nil")
		}
	}
}
