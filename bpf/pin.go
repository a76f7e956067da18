package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// layoutVersion names the pinned layout: maps by name and one link per
// interface under <PinDir>/v<layoutVersion>/. Bump it when a map's key,
// value or type changes; an old layout is then left alone (Unload it).
const layoutVersion = 2 // v2: flow_action carries the expected source

const bpffsRoot = "/sys/fs/bpf"

// PinRoot holds one pin directory per sbcd instance: several SBC nodes
// share one machine in the HA lab, and every network namespace sees the
// same bpffs.
const PinRoot = bpffsRoot + "/edgesbc"

// NetnsPinDir is the pin directory of the sbcd running in the network
// namespace at nsPath (/proc/self/ns/net for this process,
// /run/netns/NAME for a named one): PinRoot/netns-<inode>, one SBC node
// per namespace. sbcd, the lab tests and tools all find pins this way.
func NetnsPinDir(nsPath string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(nsPath, &st); err != nil {
		return "", fmt.Errorf("network namespace %s: %w", nsPath, err)
	}
	return filepath.Join(PinRoot, fmt.Sprintf("netns-%d", st.Ino)), nil
}

func layoutDir(pinDir string) string {
	return filepath.Join(pinDir, fmt.Sprintf("v%d", layoutVersion))
}

func linkPin(dir, path, ifname string) string {
	return filepath.Join(dir, "link_"+path+"_"+ifname)
}

func isBPFFS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return uint32(st.Type) == unix.BPF_FS_MAGIC
}

// resolvePinDir makes sure pinDir lies on a BPF filesystem and returns the
// path to use for it. Under /sys/fs/bpf:
//   - a mounted bpffs is used as is;
//   - in a private mount namespace (`ip netns exec` remounts /sys, hiding
//     the machine's bpffs) the bpffs of pid 1, or else of the nearest
//     ancestor process in another mount namespace, is reached through
//     /proc/<pid>/root, so pins outlive this process and its namespace;
//   - otherwise a bpffs is mounted at /sys/fs/bpf (as cilium's agent does).
func resolvePinDir(pinDir string, log *slog.Logger) (string, error) {
	pinDir = filepath.Clean(pinDir)
	if !strings.HasPrefix(pinDir, bpffsRoot+"/") {
		parent := pinDir
		for !isBPFFS(parent) {
			if parent == "/" || parent == "." {
				return "", fmt.Errorf("%w: pin dir %s is not on a BPF filesystem", ErrUnsupported, pinDir)
			}
			parent = filepath.Dir(parent)
		}
		return pinDir, nil
	}
	if isBPFFS(bpffsRoot) {
		return pinDir, nil
	}
	if root := outerRoot(); root != "" {
		log.Info("bpf: /sys/fs/bpf is not mounted in this mount namespace; using the bpffs of "+root, "pin_dir", pinDir)
		return root + pinDir, nil
	}
	if err := os.MkdirAll(bpffsRoot, 0o700); err != nil {
		return "", fmt.Errorf("%w: create %s: %v", ErrUnsupported, bpffsRoot, err)
	}
	if err := unix.Mount("bpf", bpffsRoot, "bpf", 0, "mode=0700"); err != nil {
		return "", fmt.Errorf("%w: mount bpffs at %s: %v", ErrUnsupported, bpffsRoot, err)
	}
	log.Info("bpf: mounted bpffs; if this is a private mount namespace (ip netns exec), pinned flows end with it: mount /sys/fs/bpf on the host first", "at", bpffsRoot)
	return pinDir, nil
}

// outerRoot returns "/proc/<pid>/root" for pid 1 or the nearest ancestor
// that lives in another mount namespace and has a bpffs at /sys/fs/bpf, or
// "" when there is none (or /proc does not let us look).
func outerRoot() string {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return ""
	}
	pids := []int{1}
	for pid, n := os.Getppid(), 0; pid > 1 && n < 32; n++ {
		pids = append(pids, pid)
		pid = parentOf(pid)
	}
	for _, pid := range pids {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err != nil || ns == self {
			continue
		}
		root := fmt.Sprintf("/proc/%d/root", pid)
		if isBPFFS(root + bpffsRoot) {
			return root
		}
	}
	return ""
}

func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	var state string
	var ppid int
	if _, err := fmt.Sscanf(s[i+1:], " %s %d", &state, &ppid); err != nil {
		return 0
	}
	return ppid
}

// lockDir takes an exclusive flock on dir (bpffs holds no regular files,
// so the directory itself is the lock, as in tubular). It guards Open and
// Unload against a concurrent sbcd of the same node.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// removePinned unpins everything under the layout directory, and any
// other layout's (links first, which detaches them) and removes the
// directories.
func removePinned(pinDir string) error {
	err := errors.Join(removeLayout(layoutDir(pinDir)), removeOldLayouts(pinDir, nil))
	// The node directory goes too when nothing else is in it.
	_ = os.Remove(pinDir)
	return err
}

// removeOldLayouts detaches and unpins every other layout version under
// pinDir (v<N>, N != layoutVersion). Its programs cannot share the
// interfaces with this one, and an older one may forward what this one
// must not (v1 had no source check); its flows are unreadable here, so
// the relay installs them again.
func removeOldLayouts(pinDir string, log *slog.Logger) error {
	entries, err := os.ReadDir(pinDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		var v int
		if !e.IsDir() || e.Name() == fmt.Sprintf("v%d", layoutVersion) {
			continue
		}
		if _, err := fmt.Sscanf(e.Name(), "v%d", &v); err != nil || fmt.Sprintf("v%d", v) != e.Name() {
			continue
		}
		dir := filepath.Join(pinDir, e.Name())
		if log != nil {
			log.Warn("bpf: unloading the pinned fast path of an older layout; its flows are installed again", "dir", dir, "layout", layoutVersion)
		}
		if err := removeLayout(dir); err != nil {
			errs = append(errs, fmt.Errorf("unload layout %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// removeLayout unpins everything under one layout directory (links first,
// which detaches them) and removes it.
func removeLayout(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, first := range []bool{true, false} {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "link_") != first {
				continue
			}
			if first {
				errs = append(errs, detachPinned(filepath.Join(dir, e.Name())))
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// detachPinned detaches the link pinned at pin now and removes the pin.
// Unpinning alone would detach it too, but later: the last reference
// goes with the bpffs inode, which the kernel frees after an RCU grace
// period and a workqueue, and until then the old program keeps running.
func detachPinned(pin string) error {
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		_ = l.Detach() // links without BPF_LINK_DETACH go on Unpin+Close
		err := l.Unpin()
		l.Close()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// UnloadPinned detaches and unpins whatever an earlier Open left under
// pinDir, without opening it (for tools and tests).
func UnloadPinned(pinDir string) error {
	dir, err := resolvePinDir(pinDir, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	return removePinned(dir)
}

// PinnedFlowsPath is where the flows map of the current layout is pinned
// under pinDir: tests read it straight from bpffs, whatever sbcd says.
func PinnedFlowsPath(pinDir string) string {
	return filepath.Join(layoutDir(pinDir), "flows")
}

// PinnedCounters reads the global counters an Open under pinDir pinned,
// summed over CPUs, without opening the datapath (for tools and tests).
func PinnedCounters(pinDir string) (Counters, error) {
	var c Counters
	dir, err := resolvePinDir(pinDir, slog.New(slog.DiscardHandler))
	if err != nil {
		return c, err
	}
	m, err := ebpf.LoadPinnedMap(filepath.Join(layoutDir(dir), "counters"), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return c, fmt.Errorf("bpf: pinned counters: %w", err)
	}
	defer m.Close()
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return c, err
	}
	vals := make([]uint64, ncpu)
	for i := range c {
		if err := m.Lookup(uint32(i), &vals); err != nil {
			return c, fmt.Errorf("bpf: read counter %s: %w", Counter(i), err)
		}
		for _, v := range vals {
			c[i] += v
		}
	}
	return c, nil
}
