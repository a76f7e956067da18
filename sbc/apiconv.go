package sbc

// The admin API's wire types live in package api, which imports nothing
// of the project; the packages that own the state keep their own types.
// These conversions are the one place the two meet. Flat types convert
// directly, so a field added on one side and not the other fails to
// compile; apiconv_test.go checks the JSON is the same either way.

import (
	"github.com/edgesbc/edgesbc/api"
	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/policy"
)

// apiSlice converts each element; nil stays nil (encoded as null, as the
// source type was).
func apiSlice[T, U any](in []T, conv func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = conv(v)
	}
	return out
}

func apiCallMedia(m mediarelay.CallMedia) api.CallMedia {
	return api.CallMedia{MOS: m.MOS, Streams: apiSlice(m.Streams, apiStream)}
}

func apiStream(s mediarelay.StreamInfo) api.Stream {
	return api.Stream{
		Index: s.Index, LocalA: s.LocalA, LocalB: s.LocalB,
		FromA: api.StreamDir(s.FromA), FromB: api.StreamDir(s.FromB),
		OnHold: s.OnHold, Path: s.Path, Codec: s.Codec, SRTPA: s.SRTPA, SRTPB: s.SRTPB,
	}
}

func apiFlow(f mediarelay.FlowInfo) api.Flow { return api.Flow(f) }

func apiTrunkTarget(t policy.TargetStatus) api.TrunkTarget { return api.TrunkTarget(t) }

func apiBan(b policy.Ban) api.Ban { return api.Ban(b) }

func apiAdmission(a policy.AdmissionState) api.Admission { return api.Admission(a) }

func apiRegistration(realm string, b policy.Binding) api.Registration {
	return api.Registration{
		Realm: realm, AOR: b.AOR, Contact: b.Contact,
		Host: b.Host, Port: b.Port, Transport: b.Transport, Source: b.Source, Expires: b.Expires,
	}
}
