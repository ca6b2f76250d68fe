package load

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// perfFlat is the shape of `perf report --stdio --no-children --sort
// dso,symbol -g none` (perf 6.1).
const perfFlat = `# To display the perf.data header info, please use --header/--header-only options.
#
# Total Lost Samples: 0
#
# Samples: 4K of event 'cpu-clock:ppp'
# Event count (approx.): 9619238580
#
# Overhead  Shared Object      Symbol
# ........  .................  ..............................................
#
    12.50%  cloud-app          [.] runtime.mallocgc - -
     9.00%  [kernel.kallsyms]  [k] tcp_sendmsg_locked
     6.25%  cloud-app          [.] github.com/jackc/pgx/v5/pgproto3.(*Frontend).Receive
     5.00%  cloud-app          [.] runtime.scanobject
     3.00%  cloud-app          [.] gorm.io/gorm/schema.(*Field).setupValuerAndSetter.func1
     2.00%  libc.so.6          [.] __memmove_avx_unaligned
     1.50%  cloud-app          [.] spacesync.io/cloud-app/internal/store.(*Store).Redeem.func1
`

const perfChildren = `# Samples: 4K of event 'cpu-clock:ppp'
#
# Children      Self  Shared Object      Symbol
# ........  ........  .................  ..............
#
    80.00%     0.10%  cloud-app          [.] net/http.(*conn).serve
    45.00%     1.50%  cloud-app          [.] spacesync.io/cloud-app/internal/store.(*Store).Redeem.func1
    20.00%     0.00%  cloud-app          [.] spacesync.io/shared/token.Open
`

func TestParsePerfReport(t *testing.T) {
	t.Run("OK_Flat", func(t *testing.T) {
		got := ParsePerfReport(perfFlat, false)
		want := []ProfileEntry{
			{"runtime.mallocgc", 12.5},
			{"[k] tcp_sendmsg_locked", 9},
			{"github.com/jackc/pgx/v5/pgproto3.(*Frontend).Receive", 6.25},
			{"runtime.scanobject", 5},
			{"gorm.io/gorm/schema.(*Field).setupValuerAndSetter.func1", 3},
			{"libc.so.6: __memmove_avx_unaligned", 2},
			{"spacesync.io/cloud-app/internal/store.(*Store).Redeem.func1", 1.5},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParsePerfReport flat (-want +got):\n%s", diff)
		}
		if n := perfSampleCount(perfFlat); n != 4000 {
			t.Errorf("perfSampleCount = %d, want 4000", n)
		}
	})
	t.Run("OK_ChildrenKeepsInclusive", func(t *testing.T) {
		got := ParsePerfReport(perfChildren, true)
		want := []ProfileEntry{
			{"net/http.(*conn).serve", 80},
			{"spacesync.io/cloud-app/internal/store.(*Store).Redeem.func1", 45},
			{"spacesync.io/shared/token.Open", 20},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParsePerfReport children (-want +got):\n%s", diff)
		}
	})
	t.Run("ErrNothingToRead", func(t *testing.T) {
		// An empty profile, or the children layout read as flat (the
		// second column is not a shared object), yields nothing usable.
		if got := ParsePerfReport("# Samples: 0\n#\n", false); len(got) != 0 {
			t.Errorf("ParsePerfReport of an empty report = %v, want nothing", got)
		}
		if n := perfSampleCount("no header\n"); n != 0 {
			t.Errorf("perfSampleCount without a header = %d, want 0", n)
		}
	})
}

func TestGoPackage(t *testing.T) {
	tests := []struct{ sym, want string }{
		{"runtime.mallocgc", "runtime"},
		{"github.com/jackc/pgx/v5/pgproto3.(*Frontend).Receive", "github.com/jackc/pgx/v5/pgproto3"},
		{"gorm.io/gorm/schema.(*Field).setupValuerAndSetter.func1", "gorm.io/gorm/schema"},
		{"gorm.io/gorm.(*DB).Find", "gorm.io/gorm"},
		{"crypto/internal/fips140/aes/gcm.gcmAesEnc", "crypto/internal/fips140/aes/gcm"},
		{"[k] tcp_sendmsg_locked", "kernel"},
		{"libc.so.6: __memmove_avx_unaligned", "libc.so.6"},
		{"0x0000000000452f1b", "0x0000000000452f1b"},
	}
	for _, tc := range tests {
		if got := goPackage(tc.sym); got != tc.want {
			t.Errorf("goPackage(%q) = %q, want %q", tc.sym, got, tc.want)
		}
	}
	got := byPackage(ParsePerfReport(perfFlat, false))
	want := []ProfileEntry{{"runtime", 17.5}, {"kernel", 9}, {"github.com/jackc/pgx/v5/pgproto3", 6.25}, {"gorm.io/gorm/schema", 3},
		{"libc.so.6", 2}, {"spacesync.io/cloud-app/internal/store", 1.5}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("byPackage (-want +got):\n%s", diff)
	}
}

func TestBounds(t *testing.T) {
	level := func(busy, other float64) Level {
		l := Level{Result: Result{Clients: 64, Summary: Summary{OK: 3000, Elapsed: 5 * time.Second, Mean: 100 * time.Millisecond}}}
		l.CPU = CPUUse{NumCPU: 2, Busy: busy, Other: other,
			Cores: map[string]float64{GroupCloudApp: 0.6, GroupPostgres: 0.5, GroupLoadgen: 0.1}}
		return l
	}
	t.Run("OK_Saturated", func(t *testing.T) {
		got := strings.Join(Bounds(level(1.98, 0.78), "redemption", true), "\n")
		// 600/s; cloud-app 0.6 cores / 600 = 1.00 ms; ceiling 2 × 600 / 1.2 = 1000/s.
		for _, want := range []string{"saturated (1.98 of 2 cores busy)", "cloud-app 1.00 ms", "postgres 0.83 ms",
			"about 1000/s", "Other work on the machine took 0.78 cores", "64 / 600/s = 107 ms", "well over 1280/s"} {
			if !strings.Contains(got, want) {
				t.Errorf("Bounds = %q, want it to contain %q", got, want)
			}
		}
	})
	t.Run("OK_NotCPU", func(t *testing.T) {
		got := strings.Join(Bounds(level(1.2, 0), "request", false), "\n")
		if !strings.Contains(got, "Not CPU") || strings.Contains(got, "saturated") || strings.Contains(got, "Other work") || strings.Contains(got, "closed loop") {
			t.Errorf("Bounds on an idle machine without the latency note = %q", got)
		}
	})
}

func TestStatementsBetween(t *testing.T) {
	before := stmtCounters{
		"1/true":  {Query: "UPDATE syncs", Calls: 100, Total: 100 * time.Millisecond, Rows: 100},
		"2/false": {Query: "SELECT 1 FROM tenants FOR KEY SHARE", Calls: 5000, Total: 50 * time.Millisecond, Rows: 5000},
	}
	after := stmtCounters{
		"1/true":  {Query: "UPDATE syncs", Calls: 300, Total: 500 * time.Millisecond, Rows: 300},
		"2/false": {Query: "SELECT 1 FROM tenants FOR KEY SHARE", Calls: 5200, Total: 60 * time.Millisecond, Rows: 5200},
		"3/true":  {Query: "INSERT INTO links", Calls: 200, Total: 600 * time.Millisecond, Rows: 200},
		"4/true":  {Query: "COPY syncs", Calls: 0, Total: 0},
	}
	got := StatementsBetween(before, after, 10)
	want := []Statement{
		{Query: "INSERT INTO links", Calls: 200, Total: 600 * time.Millisecond, Mean: 3 * time.Millisecond, Rows: 200},
		{Query: "UPDATE syncs", Calls: 200, Total: 400 * time.Millisecond, Mean: 2 * time.Millisecond, Rows: 200},
		{Query: "SELECT 1 FROM tenants FOR KEY SHARE", Calls: 200, Total: 10 * time.Millisecond, Mean: 50 * time.Microsecond, Rows: 200},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("StatementsBetween (-want +got):\n%s", diff)
	}
	if got := StatementsBetween(before, after, 1); len(got) != 1 || got[0].Query != "INSERT INTO links" {
		t.Errorf("StatementsBetween with n = 1 = %v, want only the costliest", got)
	}
}
