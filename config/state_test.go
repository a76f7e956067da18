package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgesbc/edgesbc/config"
)

func TestStateDir(t *testing.T) {
	c, err := config.Parse([]byte(baseYAML + "state_dir: /var/lib/edgesbc\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Persistence(); p == nil || p.DataDir != "/var/lib/edgesbc" || p.NodeID != "local" || len(p.Peers) != 0 {
		t.Fatalf("Persistence() = %+v", p)
	}
	if c, _ := config.Parse([]byte(baseYAML)); c.Persistence() != nil {
		t.Fatal("persistence without state_dir or ha")
	}
	for name, y := range map[string]string{
		"relative": "state_dir: var/lib\n",
		"with ha":  "state_dir: /var/lib/x\nha: {node_id: a, data_dir: /var/lib/y}\n",
	} {
		_, err := config.Parse([]byte(baseYAML + y))
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "state_dir") {
			t.Errorf("%s: %v, want an error naming state_dir", name, err)
		}
	}
}
