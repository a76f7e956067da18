package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/config"
)

func TestTrunkAdmissionConfig(t *testing.T) {
	y := editT(t, `targets: ["proxy.b.example:5070"]`, `targets: ["proxy.b.example:5070"]
    admission: {max_calls: 30, max_cps: 2.5}`)
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Trunk("carrier-b").Admission; a == nil || a.MaxCalls != 30 || a.MaxCPS != 2.5 || a.RetryAfter.Std() != 5*time.Second {
		t.Fatalf("carrier-b admission %+v", a)
	}
	if c.Trunk("carrier-a").Admission != nil {
		t.Fatal("carrier-a has an admission policy it was not given")
	}
	for _, bad := range []struct{ adm, key string }{
		{"{max_calls: -1}", "trunks[1].admission.max_calls"},
		{"{max_cps: -2}", "trunks[1].admission.max_cps"},
		{"{max_calls: 3, retry_after: 2h}", "trunks[1].admission.retry_after"},
		{"{max_calls: 3, burst: 2}", "field burst not found"},
	} {
		y := editT(t, `targets: ["proxy.b.example:5070"]`, `targets: ["proxy.b.example:5070"]
    admission: `+bad.adm)
		_, err := config.Parse([]byte(y))
		if err == nil || !strings.Contains(err.Error(), bad.key) {
			t.Errorf("%s: err %v, want one naming %s", bad.adm, err, bad.key)
		}
		if err != nil && !strings.Contains(bad.key, "not found") && !errors.Is(err, config.ErrInvalid) {
			t.Errorf("%s: %v is not ErrInvalid", bad.adm, err)
		}
	}
}
