package mediarelay

// MOS estimates the mean opinion score of a G.711 call from what the relay
// measures, with a simplified ITU-T G.107 E-model:
//
//	d      = rtt/2 + 2*jitter + 20 ms            one-way delay: network, jitter
//	                                            buffer, codec and packetization
//	Id     = 0.024*d + 0.11*(d-177.3)*H(d-177.3) delay impairment (Cole and
//	                                            Rosenbluth's fit of G.107)
//	Ie_eff = Ie + (95-Ie) * Ppl/(Ppl+Bpl)        loss impairment, G.107 7.2,
//	                                            Ie=0, Bpl=25 (G.113 Appendix I,
//	                                            G.711 with packet loss
//	                                            concealment, random loss)
//	R      = 93.2 - Id - Ie_eff
//	MOS    = 1 + 0.035R + 7e-6*R*(R-60)*(100-R)  G.107 Annex B, for 0 < R < 100
//
// with Ppl the loss in percent and H the step function. The result is
// clamped to 1..4.5. It is a trend indicator for dashboards and alarms, not a
// listening test: echo, noise and burstiness are ignored.
func MOS(lossPct, jitterMs, rttMs float64) float64 {
	const (
		r0  = 93.2
		ie  = 0.0
		bpl = 25.0
	)
	lossPct = clampF(lossPct, 0, 100)
	jitterMs = max(jitterMs, 0)
	rttMs = max(rttMs, 0)

	d := rttMs/2 + 2*jitterMs + 20
	id := 0.024 * d
	if d > 177.3 {
		id += 0.11 * (d - 177.3)
	}
	ieEff := ie + (95-ie)*lossPct/(lossPct+bpl)
	r := r0 - id - ieEff

	var mos float64
	switch {
	case r <= 0:
		mos = 1
	case r >= 100:
		mos = 4.5
	default:
		mos = 1 + 0.035*r + 7e-6*r*(r-60)*(100-r)
	}
	return clampF(mos, 1, 4.5)
}

func clampF(v, lo, hi float64) float64 {
	switch {
	case v != v: // NaN
		return lo
	case v < lo:
		return lo
	case v > hi:
		return hi
	}
	return v
}
