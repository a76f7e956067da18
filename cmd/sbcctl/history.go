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

// history prints the samples behind the dashboard's charts, oldest first.
func history(c *http.Client, admin string, asJSON bool) error {
	h, raw, err := fetch[api.History](c, admin+"/api/v1/history", "history", asJSON)
	if err != nil || raw {
		return err
	}
	return printHistory(os.Stdout, h)
}

func printHistory(out io.Writer, h api.History) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "TIME\tCALLS/S\tACTIVE\tSHED/S\tMOS\tWORST MOS\t")
	for _, p := range h.Points {
		mos, low := "-", "-"
		if p.MOS > 0 {
			mos, low = fmt.Sprintf("%.2f", p.MOS), fmt.Sprintf("%.2f", p.MOSMin)
		}
		fmt.Fprintf(w, "%s\t%.1f\t%d\t%.1f\t%s\t%s\t\n", p.Time.Local().Format(time.TimeOnly), p.CPS, p.Active, p.ShedPS, mos, low)
	}
	fmt.Fprintf(w, "%d points, one every %gs (%d kept)\t\t\t\t\t\t\n", len(h.Points), h.IntervalS, h.Capacity)
	return w.Flush()
}
