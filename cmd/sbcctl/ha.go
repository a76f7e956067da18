package main

import (
	"fmt"
	"net/http"
	"os"
	"text/tabwriter"

	"github.com/edgesbc/edgesbc/api"
)

// haStatus prints /api/v1/ha: role, leader, indexes, lag and the voters.
func haStatus(c *http.Client, admin string, asJSON bool) error {
	s, raw, err := fetch[api.HA](c, admin+"/api/v1/ha", "ha status", asJSON)
	if err != nil || raw {
		return err
	}
	leader := s.Leader
	if leader == "" {
		leader = "(none)"
	}
	fmt.Printf("node %s  role %s (raft %s, term %d)  leader %s\n", s.NodeID, s.Role, s.RaftState, s.Term, leader)
	fmt.Printf("applied %d  commit %d  last %d  lag %d entries  last contact %.0f ms  records %d  role changes %d (last %s)\n",
		s.AppliedIndex, s.CommitIndex, s.LastIndex, s.LagEntries, s.LastContactMS, s.Records, s.RoleChanges, s.Since.Format("15:04:05"))
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PEER\tADDR\tSUFFRAGE\tNOTE")
	for _, p := range s.Peers {
		note := ""
		switch {
		case p.Self && p.Leader:
			note = "self, leader"
		case p.Self:
			note = "self"
		case p.Leader:
			note = "leader"
		}
		if p.Unreachable {
			note += " unreachable"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.ID, p.Addr, p.Suffrage, note)
	}
	return w.Flush()
}
