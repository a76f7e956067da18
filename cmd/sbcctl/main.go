// Command sbcctl talks to a running sbcd's admin API.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgesbc/edgesbc/api"
)

const usage = `usage: sbcctl [-admin URL] [-token-file FILE] [-cacert FILE] [-json] COMMAND
The admin token (needed by unban, reload and drain, and by everything when the admin API is
not on loopback) comes from -token-file or $SBCCTL_TOKEN.
commands:
  calls     active calls as a table, with MOS (-json for the raw list)
  call ID   one call with its media streams (JSON)
  flows     media flows: path (xdp, tc, userspace), packets, last seen (-json for raw)
  trunks    trunks: registration and each target's health (-json for the raw list)
  ha        HA role, leader, voters, applied index and replication lag (-json for raw)
  history   the dashboard's samples of the last hour: calls/s, active, shed/s, MOS (-json for raw)
  health    exits 0 when sbcd answers /healthz
  metrics   the Prometheus metrics text
` + guardUsage + "\n" + opsUsage

func main() {
	admin := flag.String("admin", "http://127.0.0.1:8080", "admin API base URL")
	asJSON := flag.Bool("json", false, "print JSON instead of a table")
	tokenFile := flag.String("token-file", "", "file holding the admin token (else $"+tokenEnv+")")
	caFile := flag.String("cacert", "", "PEM file of the CA that signed the admin API's certificate (https)")
	flag.Usage = func() { fmt.Fprintln(os.Stderr, usage) }
	flag.Parse()
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	client, err := newClient(*tokenFile, *caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sbcctl:", err)
		os.Exit(2)
	}
	switch flag.Arg(0) {
	case "calls":
		err = calls(client, *admin, *asJSON)
	case "trunks":
		err = trunks(client, *admin, *asJSON)
	case "call":
		if flag.NArg() != 2 {
			flag.Usage()
			os.Exit(2)
		}
		var b []byte
		if b, err = get(client, *admin+"/api/v1/calls/"+flag.Arg(1)); err == nil {
			os.Stdout.Write(b)
		}
	case "flows":
		err = flows(client, *admin, *asJSON)
	case "ha":
		err = haStatus(client, *admin, *asJSON)
	case "history":
		err = history(client, *admin, *asJSON)
	case "health":
		_, err = get(client, *admin+"/healthz")
		if err == nil {
			fmt.Println("ok")
		}
	case "metrics":
		var b []byte
		if b, err = get(client, *admin+"/metrics"); err == nil {
			os.Stdout.Write(b)
		}
	default:
		if ok, gerr := guardCommand(client, *admin, flag.Arg(0), flag.Args()[1:], *asJSON); ok {
			err = gerr
			break
		}
		if ok, oerr := opsCommand(client, *admin, flag.Arg(0), flag.Args()[1:], *asJSON); ok { // ops.go
			err = oerr
			break
		}
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sbcctl:", err)
		os.Exit(1)
	}
}

func get(c *http.Client, url string) ([]byte, error) {
	res, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", url, res.Status, strings.TrimSpace(string(b[:min(len(b), 512)])))
	}
	return b, nil
}

// fetch gets url and decodes it as a T; with asJSON it prints the body
// as it came instead (raw is then true and v empty).
func fetch[T any](c *http.Client, url, what string, asJSON bool) (v T, raw bool, err error) {
	b, err := get(c, url)
	if err != nil {
		return v, false, err
	}
	if asJSON {
		_, err = os.Stdout.Write(b)
		return v, true, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, false, fmt.Errorf("decode %s: %w", what, err)
	}
	return v, false, nil
}

func calls(c *http.Client, admin string, asJSON bool) error {
	list, raw, err := fetch[[]api.Call](c, admin+"/api/v1/calls", "calls", asJSON)
	if err != nil || raw {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATE\tAGE\tROUTE\tPATH\tMOS\tA REALM\tA PEER\tA CALL-ID\tB REALM\tB PEER\tB CALL-ID")
	for _, ci := range list {
		bRealm, bPeer, bCID := "-", "-", "-"
		if ci.B != nil {
			bRealm, bPeer, bCID = ci.B.Realm, ci.B.Peer, ci.B.CallID
		}
		mos := "-"
		if ci.MOS > 0 {
			mos = fmt.Sprintf("%.2f", ci.MOS)
		}
		path := "-"
		if ci.Path != "" {
			path = ci.Path
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ci.ID, ci.State,
			time.Since(ci.Start).Round(time.Second), ci.Route, path, mos,
			ci.A.Realm, ci.A.Peer, ci.A.CallID, bRealm, bPeer, bCID)
	}
	fmt.Fprintf(w, "%d calls\n", len(list))
	return w.Flush()
}
