package sipguard

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/ci"
)

// tortureDir is shared/ beside the repository: /work/shared for /work/main,
// and beside the clone in CI. The files are read in place, never copied.
var tortureDir = filepath.Join("..", "..", "..", "shared", "testdata", "rfc4475")

type tortureCase struct {
	file, section, verdict, handling string
	data                             []byte
}

func loadTorture(tb testing.TB) []tortureCase {
	tb.Helper()
	f, err := os.Open(filepath.Join(tortureDir, "INDEX.tsv"))
	if err != nil {
		ci.Skipf(tb, "../shared is absent (no RFC 4475 torture tests at %s): %v", tortureDir, err)
	}
	defer f.Close()
	var cases []tortureCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 5 || cols[0] == "file" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(tortureDir, cols[0]))
		if err != nil {
			tb.Fatalf("INDEX.tsv names %s: %v", cols[0], err)
		}
		cases = append(cases, tortureCase{cols[0], cols[1], cols[3], cols[4], data})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(cases) < 40 {
		tb.Fatalf("INDEX.tsv lists only %d torture files", len(cases))
	}
	return cases
}

// sipgoRefuses lists RFC 4475 messages that Check accepts but sipgo v1.7.2
// cannot parse, with the reason. The test fails if one of them starts to
// parse, so the list cannot go stale.
var sipgoRefuses = map[string]string{}

// mustReject400 are application-level cases that the guard answers itself.
var mustReject400 = map[string]bool{"multi01.dat": true, "mcl01.dat": true, "insuf.dat": true}

func TestTorture(t *testing.T) {
	cases := loadTorture(t)
	parser := sip.NewParser()
	var table strings.Builder
	for _, tc := range cases {
		v := Check(tc.data, Limits{})
		isResp := strings.HasPrefix(string(tc.data), "SIP/")
		table.WriteString(strings.Join([]string{tc.file, tc.verdict, v.Action.String(), itoa(v.Status), v.Why, v.Reason}, "\t") + "\n")

		switch {
		case tc.verdict == "valid":
			if v.Action != Accept {
				t.Errorf("%s (valid): got %+v, want Accept", tc.file, v)
			}
		case tc.verdict == "invalid" && isResp:
			if v.Action != Drop {
				t.Errorf("%s (invalid response): got %+v, want Drop", tc.file, v)
			}
		case tc.verdict == "invalid":
			want := 400
			if strings.Contains(tc.handling, "505") {
				want = 505
			}
			if v.Action != Reject || v.Status != want {
				t.Errorf("%s (invalid request, %q): got %+v, want Reject %d", tc.file, tc.handling, v, want)
			}
		case tc.verdict == "transaction", mustReject400[tc.file]:
			if v.Action != Reject || v.Status != 400 {
				t.Errorf("%s (%s): got %+v, want Reject 400", tc.file, tc.verdict, v)
			}
		}

		if v.Action == Reject {
			if StatelessResponse(tc.data, v.Status, v.Reason) == nil {
				t.Errorf("%s: Reject %d but StatelessResponse gives nothing", tc.file, v.Status)
			}
		}
		if v.Action != Accept {
			continue
		}
		_, err := parser.ParseSIP(tc.data)
		why, known := sipgoRefuses[tc.file]
		switch {
		case err != nil && known:
			t.Logf("%s: accepted by Check, but sipgo refuses it (%s): %v", tc.file, why, err)
		case err != nil:
			t.Errorf("%s: accepted by Check, but sipgo cannot parse it: %v", tc.file, err)
		case known:
			t.Errorf("%s: sipgo parses it now; drop it from sipgoRefuses", tc.file)
		}
	}
	t.Logf("file\tverdict\taction\tstatus\twhy\treason\n%s", table.String())
}

func itoa(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}
