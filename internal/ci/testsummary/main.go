// Command testsummary reads `go test -json` on stdin, keeps it in a file,
// prints what plain `go test` would (a failed test's output, each
// package's ok/FAIL line) as it comes, and ends with every FAIL and SKIP
// line, then the package results, so that a run's closing lines say what
// failed and what did not run. It exits 1 when anything failed.
//
//	go test -json ./... | go run ./internal/ci/testsummary -o .ci/out/test.json
//	go run ./internal/ci/testsummary -summary .ci/out/test.json
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string
}

type summary struct {
	live      io.Writer // nil: summary only
	buf       map[string][]string
	fails     []string
	skips     []string
	results   []string
	failed    bool
	malformed int
}

func main() {
	out := flag.String("o", "", "write the raw JSON stream to this file")
	from := flag.String("summary", "", "summarize this saved JSON file instead of stdin")
	flag.Parse()
	s := &summary{buf: map[string][]string{}}
	var in io.Reader = os.Stdin
	if *from != "" {
		f, err := os.Open(*from)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(2)
		}
		defer f.Close()
		in = f
	} else {
		s.live = os.Stdout
	}
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(2)
		}
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(2)
		}
		defer f.Close()
		in = io.TeeReader(in, f)
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		s.line(sc.Text())
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary: reading:", err)
		s.failed = true
	}
	s.print(os.Stdout)
	if *out != "" {
		fmt.Printf("go test -json output kept in %s\n", *out)
	}
	if s.failed {
		os.Exit(1)
	}
}

func (s *summary) emit(text string) {
	if s.live != nil {
		fmt.Fprint(s.live, text)
	}
}

// line takes one line of the stream. A line that is not JSON (a build
// error go printed as text) is passed through and counts as a failure only
// when no package result follows; go test's own exit status decides then.
func (s *summary) line(l string) {
	var e event
	if !strings.HasPrefix(l, "{") || json.Unmarshal([]byte(l), &e) != nil {
		s.malformed++
		s.emit(l + "\n")
		return
	}
	key := e.Package + " " + e.Test
	switch e.Action {
	case "output", "build-output":
		if e.Test == "" {
			// Package-level output: ok/FAIL lines, TestMain's prints, build
			// errors; not the test binary's bare PASS, which only -v prints.
			if e.Output != "PASS\n" {
				s.emit(e.Output)
			}
			if strings.HasPrefix(e.Output, "ok  \t") || strings.HasPrefix(e.Output, "FAIL\t") || strings.HasPrefix(e.Output, "?   \t") {
				s.results = append(s.results, strings.TrimRight(e.Output, "\n"))
			}
			return
		}
		if !isNoise(e.Output) {
			s.buf[key] = append(s.buf[key], e.Output)
		}
	case "fail":
		s.failed = true
		if e.Test == "" {
			s.fails = append(s.fails, "FAIL package "+e.Package)
			return
		}
		s.fails = append(s.fails, fmt.Sprintf("FAIL %s %s", e.Package, e.Test))
		for _, o := range s.buf[key] {
			s.emit(o)
		}
		delete(s.buf, key)
	case "build-fail":
		s.failed = true
		s.fails = append(s.fails, "FAIL build "+e.ImportPath)
	case "skip":
		if e.Test == "" {
			return // a package with no test files
		}
		why := skipReason(s.buf[key])
		s.skips = append(s.skips, fmt.Sprintf("SKIP %s %s%s", e.Package, e.Test, why))
		for _, o := range s.buf[key] {
			if strings.Contains(o, "--- SKIP") {
				s.emit(o)
			}
		}
		delete(s.buf, key)
	case "pass":
		delete(s.buf, key)
	}
}

// isNoise: the -v progress lines that plain go test does not print.
func isNoise(o string) bool {
	t := strings.TrimSpace(o)
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// skipReason is the last log line before "--- SKIP": the t.Skip message.
func skipReason(out []string) string {
	for i := len(out) - 1; i >= 0; i-- {
		t := strings.TrimSpace(out[i])
		if t == "" || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		return ": " + t
	}
	return ""
}

func (s *summary) print(w io.Writer) {
	fmt.Fprintf(w, "\n==== %d SKIP\n", len(s.skips))
	for _, l := range s.skips {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintf(w, "==== %d FAIL\n", len(s.fails))
	for _, l := range s.fails {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w, "==== package results")
	for _, l := range s.results {
		fmt.Fprintln(w, l)
	}
	if s.failed {
		fmt.Fprintln(w, "FAIL")
	} else {
		fmt.Fprintln(w, "PASS")
	}
}
