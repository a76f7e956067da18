// Package pgtest runs a throwaway PostgreSQL server for tests: Debian's
// postgresql binaries, a data directory in a temp dir, a unix socket only
// (no TCP port), run as an unprivileged user (nobody when the test runs
// as root: postgres refuses root). Stop and Start let a test take the
// database away and bring it back.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/edgesbc/edgesbc/internal/ci"
)

// Server is one PostgreSQL server.
type Server struct {
	// DSN reaches it over its unix socket as the superuser "cdr".
	DSN string

	t       testing.TB
	bin     string
	base    string
	data    string
	sock    string
	cred    *syscall.Credential
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile string
}

// Bin is the directory of the newest installed server's binaries, or "".
func Bin() string {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	slices.Sort(m)
	if len(m) == 0 {
		return ""
	}
	return filepath.Dir(m[len(m)-1])
}

// Start initializes a cluster and starts it; it is stopped and removed
// when the test ends. Without the binaries the test skips (fails under
// CI).
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Bin()
	if bin == "" {
		ci.Skip(t, "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/postgres; make deps installs it)")
	}
	base, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, base: base, data: filepath.Join(base, "data"), sock: filepath.Join(base, "sock")}
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(base)
	})
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(s.sock, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		s.cred = &syscall.Credential{Uid: 65534, Gid: 65534} // nobody:nogroup
		for _, p := range []string{base, s.sock} {
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.logFile = filepath.Join(base, "server.log")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	init := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", s.data, "-U", "cdr", "--auth=trust",
		"--no-sync", "--no-locale", "-E", "UTF8", "--no-instructions")
	s.prepare(init)
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.DSN = fmt.Sprintf("host=%s port=5432 user=cdr dbname=postgres sslmode=disable connect_timeout=2", s.sock)
	s.Start()
	return s
}

func (s *Server) prepare(c *exec.Cmd) {
	c.Env = []string{"HOME=" + s.base, "LC_ALL=C", "PATH=/usr/bin:/bin"}
	c.Dir = s.base
	if s.cred != nil {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
}

// Start runs the server (again) and waits until it takes connections.
func (s *Server) Start() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatal("pgtest: server already running")
	}
	logf, err := os.OpenFile(s.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	// fsync off: the test is about the client's durability, not the
	// server's, and syncing would cost CI seconds.
	c := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.data, "-k", s.sock, "-c", "listen_addresses=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "shared_buffers=16MB")
	s.prepare(c)
	c.Stdout, c.Stderr = logf, logf
	if err := c.Start(); err != nil {
		s.t.Fatalf("postgres: %v", err)
	}
	s.cmd = c
	s.exited = make(chan struct{})
	go func() { _ = c.Wait(); close(s.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.DSN)
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(s.logFile)
			s.cmd = nil
			s.t.Fatalf("postgres exited at start: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(s.logFile)
			s.t.Fatalf("postgres not ready in 20s: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts the server down (fast shutdown: connections are cut) and
// waits for it, killing it past 10 s.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Conn is a connection for the test's own queries, closed at its end.
func (s *Server) Conn(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}
