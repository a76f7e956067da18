package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/edgesbc/edgesbc/api"
)

const opsUsage = `  config          the config in service: file, hash, reloads (-json for raw)
  reload          re-read sbcd's config file; new calls follow it at once
  drain [BOUND]   503 to new calls, wait for the calls to end (at most BOUND,
                  default 5m), then sbcd exits; returns once it has`

// opsCommand runs config, reload and drain; false when cmd is not one.
func opsCommand(c *http.Client, admin, cmd string, args []string, asJSON bool) (bool, error) {
	switch cmd {
	case "config":
		st, raw, err := fetch[api.ConfigStatus](c, admin+"/api/v1/config", "config", asJSON)
		if err == nil && !raw {
			printConfig(st)
		}
		return true, err
	case "reload":
		return true, reload(c, admin, asJSON)
	case "drain":
		bound := ""
		if len(args) > 1 {
			return true, errors.New("usage: sbcctl drain [BOUND]")
		}
		if len(args) == 1 {
			bound = args[0]
		}
		return true, drain(c, admin, bound)
	}
	return false, nil
}

func printConfig(st api.ConfigStatus) {
	path := st.Path
	if path == "" {
		path = "(embedded default)"
	}
	fmt.Printf("file     %s\nsha256   %s\nloaded   %s\nreloads  %d applied, %d refused\n",
		path, st.Hash, st.LoadedAt.Format(time.RFC3339), st.Reloads, st.ReloadFailures)
	if st.LastResult != "" {
		fmt.Printf("last     %s at %s\n", st.LastResult, st.LastReload.Format(time.RFC3339))
	}
	if st.LastError != "" {
		fmt.Printf("error    %s\n", st.LastError)
	}
}

// reload asks for a reload: exit 0 when applied, an error naming the
// refused key otherwise.
func reload(c *http.Client, admin string, asJSON bool) error {
	res, err := c.Post(admin+"/api/v1/config/reload", "", nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read reload answer: %w", err)
	}
	var r api.Reload
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("reload: %s", res.Status)
	}
	if asJSON {
		_, _ = os.Stdout.Write(b)
	}
	if !r.Applied {
		return fmt.Errorf("reload refused, the running config stays: %s", r.Error)
	}
	if !asJSON {
		changed := strings.Join(r.Changed, ", ")
		if changed == "" {
			changed = "nothing"
		}
		fmt.Printf("reloaded %s (sha256 %.12s): changed %s\n", r.Config.Path, r.Config.Hash, changed)
	}
	return nil
}

// drain starts the drain and follows it until sbcd stops answering (it
// exited) or well past the bound.
func drain(c *http.Client, admin, bound string) error {
	u := admin + "/api/v1/drain"
	if bound != "" {
		u += "?timeout=" + url.QueryEscape(bound)
	}
	res, err := c.Post(u, "", nil)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("drain: %s: %s", res.Status, strings.TrimSpace(string(b)))
	}
	var d api.Drain
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("decode drain: %w", err)
	}
	fmt.Printf("draining: new calls get 503; %d calls up; sbcd exits by %s\n", d.ActiveCalls, d.Deadline.Format(time.RFC3339))
	last := d.ActiveCalls
	give := time.Until(d.Deadline) + 30*time.Second // the shutdown grace after the bound
	for end := time.Now().Add(give); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		d, _, err := fetch[api.Drain](c, u, "drain", false)
		if err != nil {
			fmt.Println("sbcd has stopped answering: it is shutting down")
			return nil
		}
		if d.ActiveCalls != last {
			fmt.Printf("%d calls up\n", d.ActiveCalls)
			last = d.ActiveCalls
		}
	}
	return errors.New("drain: sbcd still answers well past the bound")
}
