package main

import (
	"fmt"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"github.com/edgesbc/edgesbc/api"
)

// flows prints /api/v1/flows as a table: one line per direction of RTP or
// RTCP of each stream, with the path forwarding it.
func flows(c *http.Client, admin string, asJSON bool) error {
	fi, raw, err := fetch[api.Flows](c, admin+"/api/v1/flows", "flows", asJSON)
	if err != nil || raw {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "LOCAL\tSIDE\tKIND\tPATH\tSRC\tDST\tPACKETS\tBYTES\tLAST SEEN")
	byPath := map[string]int{}
	for _, f := range fi.Flows {
		byPath[f.Path]++
		seen := "-"
		if t, err := time.Parse(time.RFC3339Nano, f.LastSeen); err == nil {
			seen = time.Since(t).Round(time.Millisecond).String() + " ago"
		}
		dst := f.Dst
		if dst == "" {
			dst = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", f.Local, f.Side, f.Kind, f.Path, f.Src, dst, f.Packets, f.Bytes, seen)
	}
	fmt.Fprintf(w, "%d flows (%d kernel %s, %d userspace); datapath %s\n", len(fi.Flows),
		len(fi.Flows)-byPath[api.PathUserSpace], fi.Datapath, byPath[api.PathUserSpace], fi.Datapath)
	return w.Flush()
}
