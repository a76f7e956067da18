package main

import (
	"testing"

	"github.com/edgesbc/edgesbc/ha"
	"github.com/edgesbc/edgesbc/internal/wiretest"
)

// /api/v1/ha wrote ha.Status before package api; the wire type must
// marshal the same.
func TestAPIHAKeepsJSON(t *testing.T) {
	s := wiretest.Filled[ha.Status](t)
	wiretest.SameJSON(t, "HA", s, apiHA(s))
	s.Peers = nil
	wiretest.SameJSON(t, "HA without peers", s, apiHA(s))
}
