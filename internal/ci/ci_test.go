package ci

import (
	"testing"
)

// fakeTB records whether Skip or Fatal was called.
type fakeTB struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Skip(...any)           { f.skipped = true }
func (f *fakeTB) Fatalf(string, ...any) { f.failed = true }
func (f *fakeTB) Skipf(string, ...any)  { f.skipped = true }
func (f *fakeTB) Logf(string, ...any)   {}
func (f *fakeTB) Errorf(string, ...any) { f.failed = true }

func TestSkipFailsUnderCI(t *testing.T) {
	for _, c := range []struct {
		env          string
		skip, failed bool
	}{{"true", false, true}, {"1", false, true}, {"", true, false}, {"false", true, false}} {
		t.Setenv("CI", c.env)
		f := &fakeTB{}
		Skip(f, "why")
		if f.skipped != c.skip || f.failed != c.failed {
			t.Errorf("CI=%q: skipped=%v failed=%v, want %v %v", c.env, f.skipped, f.failed, c.skip, c.failed)
		}
	}
}

func TestRequireNamesMissing(t *testing.T) {
	if m := Missing("sh", "edgesbc-no-such-tool"); len(m) != 1 || m[0] != "edgesbc-no-such-tool" {
		t.Errorf("Missing = %v", m)
	}
	t.Setenv("CI", "true")
	f := &fakeTB{}
	Require(f, "sh")
	if f.failed || f.skipped {
		t.Error("Require failed with the tool present")
	}
	Require(f, "edgesbc-no-such-tool")
	if !f.failed {
		t.Error("Require passed with the tool missing under CI")
	}
}
