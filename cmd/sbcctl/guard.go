package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgesbc/edgesbc/api"
)

const guardUsage = `  bans            banned sources (-json for the raw list)
  unban ADDR      lift a ban
  registrations   contacts registered with the SBC's registrar
  admission       admission keys with their load and limits`

// guardCommand runs the protection commands; false when cmd is not one.
func guardCommand(c *http.Client, admin, cmd string, args []string, asJSON bool) (bool, error) {
	path := map[string]string{"bans": "/api/v1/bans", "registrations": "/api/v1/registrations", "admission": "/api/v1/admission"}[cmd]
	if cmd == "unban" {
		if len(args) != 1 {
			return true, fmt.Errorf("usage: sbcctl unban ADDR")
		}
		req, _ := http.NewRequest(http.MethodDelete, admin+"/api/v1/bans/"+args[0], nil)
		res, err := c.Do(req)
		if err != nil {
			return true, err
		}
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			return true, fmt.Errorf("unban %s: %s: %s", args[0], res.Status, strings.TrimSpace(string(msg)))
		}
		fmt.Println("unbanned", args[0])
		return true, nil
	}
	if path == "" {
		return false, nil
	}
	b, err := get(c, admin+path)
	if err != nil || asJSON {
		if err == nil {
			_, err = os.Stdout.Write(b)
		}
		return true, err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	switch cmd {
	case "bans":
		var l []api.Ban
		if err := json.Unmarshal(b, &l); err != nil {
			return true, fmt.Errorf("decode bans: %w", err)
		}
		fmt.Fprintln(w, "ADDRESS\tREASON\tSINCE\tLEFT\tDROPPED")
		for _, x := range l {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", x.Addr, x.Reason, x.Since.Format(time.RFC3339), time.Until(x.Until).Round(time.Second), x.Dropped)
		}
		fmt.Fprintf(w, "%d banned\n", len(l))
	case "registrations":
		var l []api.Registration
		if err := json.Unmarshal(b, &l); err != nil {
			return true, fmt.Errorf("decode registrations: %w", err)
		}
		fmt.Fprintln(w, "REALM\tAOR\tCONTACT\tTARGET\tSOURCE\tEXPIRES IN")
		for _, x := range l {
			target := net.JoinHostPort(x.Host, strconv.Itoa(x.Port)) // IPv6 in brackets
			fmt.Fprintf(w, "%s\t%s\t%s\t%s;%s\t%s\t%s\n", x.Realm, x.AOR, x.Contact, target, x.Transport, x.Source, time.Until(x.Expires).Round(time.Second))
		}
	case "admission":
		var l []api.Admission
		if err := json.Unmarshal(b, &l); err != nil {
			return true, fmt.Errorf("decode admission: %w", err)
		}
		fmt.Fprintln(w, "KEY\tACTIVE\tMAX CALLS\tMAX CPS")
		for _, x := range l {
			fmt.Fprintf(w, "%s\t%d\t%d\t%g\n", x.Key, x.Active, x.MaxCalls, x.MaxCPS)
		}
	}
	return true, w.Flush()
}
