package bpf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// NetnsPinDir names the directory by the namespace's inode, the number
// the kernel shows in the /proc/self/ns/net link (net:[<inode>]).
func TestNetnsPinDir(t *testing.T) {
	link, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	ino := strings.Trim(strings.TrimPrefix(link, "net:"), "[]")
	got, err := NetnsPinDir("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if want := "/sys/fs/bpf/edgesbc/netns-" + ino; got != want {
		t.Fatalf("NetnsPinDir = %s, want %s", got, want)
	}
	if _, err := NetnsPinDir(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("NetnsPinDir of a missing path: no error")
	}
}
