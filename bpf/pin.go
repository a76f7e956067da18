package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// layoutVersion names the pinned layout: maps by name and one link per
// interface under <PinDir>/v<layoutVersion>/. Bump it when a map's key,
// value or type changes; an old layout is then left alone (Unload it).
const layoutVersion = 1

const bpffsRoot = "/sys/fs/bpf"

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
//   - in a private mount namespace (`ip netns exec` remounts /sys) where
//     the machine's /sys/fs/bpf is a bpffs, that instance is reached
//     through /proc/1/root, so pins outlive this process's namespace;
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
	hostRoot := "/proc/1/root" + bpffsRoot
	if !sameMountNS() && isBPFFS(hostRoot) {
		log.Info("bpf: using the machine's bpffs through /proc/1/root (private mount namespace)", "pin_dir", pinDir)
		return "/proc/1/root" + pinDir, nil
	}
	if err := os.MkdirAll(bpffsRoot, 0o700); err != nil {
		return "", fmt.Errorf("%w: create %s: %v", ErrUnsupported, bpffsRoot, err)
	}
	if err := unix.Mount("bpf", bpffsRoot, "bpf", 0, "mode=0700"); err != nil {
		return "", fmt.Errorf("%w: mount bpffs at %s: %v", ErrUnsupported, bpffsRoot, err)
	}
	if !sameMountNS() {
		log.Warn("bpf: mounted a bpffs in a private mount namespace; pinned flows end with it (mount /sys/fs/bpf on the host first)")
	} else {
		log.Info("bpf: mounted bpffs", "at", bpffsRoot)
	}
	return pinDir, nil
}

func sameMountNS() bool {
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	init, err2 := os.Readlink("/proc/1/ns/mnt")
	return err1 != nil || err2 != nil || self == init
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

// removePinned unpins everything under the layout directory (links first,
// which detaches them) and removes the directories.
func removePinned(pinDir string) error {
	dir := layoutDir(pinDir)
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
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	// The node directory goes too when nothing else is in it.
	_ = os.Remove(pinDir)
	return errors.Join(errs...)
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
