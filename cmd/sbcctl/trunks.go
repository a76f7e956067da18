package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"github.com/edgesbc/edgesbc/api"
)

// trunks prints every trunk: its registration and each target's health.
func trunks(c *http.Client, admin string, asJSON bool) error {
	list, raw, err := fetch[[]api.Trunk](c, admin+"/api/v1/trunks", "trunks", asJSON)
	if err != nil || raw {
		return err
	}
	return printTrunks(os.Stdout, list, time.Now())
}

func printTrunks(out io.Writer, list []api.Trunk, now time.Time) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TRUNK\tREALM\tSTATE\tREGISTRATION\tEXPIRES\tNEXT\tTARGET\tTARGET STATE\tLAST CODE\tPROBES\tFAILED")
	for _, ti := range list {
		state := "up"
		if !ti.Up {
			state = "down"
		}
		reg, exp, next := "-", "-", "-"
		if r := ti.Registration; r != nil {
			reg = r.State
			if r.State == "failed" && r.LastCode != 0 {
				reg = fmt.Sprintf("failed (%d)", r.LastCode)
			} else if r.State == "failed" {
				reg = "failed (no answer)"
			}
			if r.Expires > 0 {
				exp = fmt.Sprintf("%ds", r.Expires)
			}
			if !r.Next.IsZero() {
				next = r.Next.Sub(now).Round(time.Second).String()
			}
		}
		if len(ti.Targets) == 0 {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t(unresolved)\t-\t-\t-\t-\n", ti.Name, ti.Realm, state, reg, exp, next)
		}
		for i, tg := range ti.Targets {
			if i > 0 {
				fmt.Fprintf(w, "\t\t\t\t\t\t%s\t%s\t%d\t%d\t%d\n", tg.Target, tg.State, tg.LastCode, tg.Probes, tg.Failures)
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", ti.Name, ti.Realm, state, reg, exp, next,
				tg.Target, tg.State, tg.LastCode, tg.Probes, tg.Failures)
		}
		if ti.DNSError != "" {
			fmt.Fprintf(w, "\t\t\tDNS: %s\t\t\t\t\t\t\t\n", ti.DNSError)
		}
	}
	fmt.Fprintf(w, "%d trunks\n", len(list))
	return w.Flush()
}
