package sbc

import (
	"encoding/json"
	"net/http"

	"github.com/edgesbc/edgesbc/mediarelay"
)

// mediaFlows is implemented by hooks that forward media: each flow with
// the path that forwards it (kernel or user space).
type mediaFlows interface {
	Flows() []mediarelay.FlowInfo
	Path() string
}

// FlowsInfo is /api/v1/flows: the kernel path in use and every flow.
type FlowsInfo struct {
	// Datapath is "xdp" or "tc" when the kernel program is loaded, else
	// "userspace"; "none" when media is not anchored.
	Datapath string                `json:"datapath"`
	Flows    []mediarelay.FlowInfo `json:"flows"`
}

// Flows lists the media flows.
func (s *SBC) Flows() FlowsInfo {
	mf, ok := s.media.(mediaFlows)
	if !ok {
		return FlowsInfo{Datapath: "none", Flows: []mediarelay.FlowInfo{}}
	}
	out := FlowsInfo{Datapath: mf.Path(), Flows: mf.Flows()}
	if out.Flows == nil {
		out.Flows = []mediarelay.FlowInfo{}
	}
	return out
}

func (s *SBC) serveFlows(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Flows())
}
