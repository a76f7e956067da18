// Package ci decides what a test that cannot run does: outside CI it
// skips and says why; under CI (CI=true, as .ci/run runs) it fails, so that
// a green CI run means every test CI is meant to run did run.
package ci

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// On reports whether tests run under CI: CI set to "true" or "1".
func On() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// Skip skips t outside CI and fails it under CI, with why either way.
func Skip(t testing.TB, why string) {
	t.Helper()
	if On() {
		t.Fatalf("CI=true: this test must run here, but: %s", why)
		return
	}
	t.Skip(why)
}

// Skipf is Skip with a format.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	Skip(t, fmt.Sprintf(format, args...))
}

// Missing returns the tools of the list that are not on PATH.
func Missing(tools ...string) []string {
	var miss []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			miss = append(miss, tool)
		}
	}
	return miss
}

// Require skips t (fails it under CI) unless every tool is on PATH,
// naming the missing ones.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	if miss := Missing(tools...); len(miss) > 0 {
		Skipf(t, "not installed: %s (make deps installs them)", strings.Join(miss, ", "))
	}
}

// Root skips t (fails it under CI) unless the test runs as root.
func Root(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root: "+why)
	}
}

// Why is the reason a lab package cannot run here ("" when it can):
// not root, or a tool missing. A TestMain prints it and, when Fatal says
// so, fails the package instead of skipping its tests.
func Why(tools ...string) string {
	if os.Geteuid() != 0 {
		return "needs root for the netns lab"
	}
	if miss := Missing(tools...); len(miss) > 0 {
		return "not installed: " + strings.Join(miss, ", ") + " (make deps installs them)"
	}
	return ""
}

// Fatal reports whether a lab package that cannot run must fail instead of
// skip: under CI, unless -short asked for the lab to be left out.
func Fatal() bool { return On() && !testing.Short() }
