package sbc

import (
	"encoding/json"
	"net/http"

	"github.com/edgesbc/edgesbc/api"
	"github.com/edgesbc/edgesbc/mediarelay"
)

// mediaFlows is implemented by hooks that forward media: each flow with
// the path that forwards it (kernel or user space).
type mediaFlows interface {
	Flows() []mediarelay.FlowInfo
	Path() string
}

// Flows lists the media flows (/api/v1/flows).
func (s *SBC) Flows() api.Flows {
	mf, ok := s.media.(mediaFlows)
	if !ok {
		return api.Flows{Datapath: "none", Flows: []api.Flow{}}
	}
	out := api.Flows{Datapath: mf.Path(), Flows: apiSlice(mf.Flows(), apiFlow)}
	if out.Flows == nil {
		out.Flows = []api.Flow{}
	}
	return out
}

func (s *SBC) serveFlows(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Flows())
}
