package sbc

import (
	"testing"

	"github.com/edgesbc/edgesbc/api"
	"github.com/edgesbc/edgesbc/internal/wiretest"
	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/policy"
)

// The admin API writes api types converted from the owning packages'
// types; before package api it wrote those types themselves. The JSON
// must not change with the conversion.
func TestAPIConversionKeepsJSON(t *testing.T) {
	cm := wiretest.Filled[mediarelay.CallMedia](t)
	wiretest.SameJSON(t, "CallMedia", cm, apiCallMedia(cm))
	fl := wiretest.Filled[[]mediarelay.FlowInfo](t)
	wiretest.SameJSON(t, "Flow", fl, apiSlice(fl, apiFlow))
	tg := wiretest.Filled[[]policy.TargetStatus](t)
	wiretest.SameJSON(t, "TrunkTarget", tg, apiSlice(tg, apiTrunkTarget))
	bans := wiretest.Filled[[]policy.Ban](t)
	wiretest.SameJSON(t, "Ban", bans, apiSlice(bans, apiBan))
	adm := wiretest.Filled[[]policy.AdmissionState](t)
	wiretest.SameJSON(t, "Admission", adm, apiSlice(adm, apiAdmission))
	reg := wiretest.Filled[RegInfo](t)
	wiretest.SameJSON(t, "TrunkRegistration", reg, api.TrunkRegistration(reg))

	// Registrations were {realm, policy.Binding embedded}.
	b := wiretest.Filled[policy.Binding](t)
	wiretest.SameJSON(t, "Registration", struct {
		Realm string `json:"realm"`
		policy.Binding
	}{"carrier", b}, apiRegistration("carrier", b))

	var nilBans []policy.Ban
	wiretest.SameJSON(t, "nil bans", nilBans, apiSlice(nilBans, apiBan))

	if api.PathUserSpace != mediarelay.PathUserSpace {
		t.Errorf("api.PathUserSpace %q, mediarelay %q", api.PathUserSpace, mediarelay.PathUserSpace)
	}
}
