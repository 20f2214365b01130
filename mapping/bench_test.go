package mapping

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
)

// mapping10k builds a ConfigMap with 10,000 entries: 7,000 roles (some
// templated, some pinned), 500 SSO permission sets, 2,000 users and 500
// accounts, about 1.2 MB, near the 1 MiB a real ConfigMap can hold.
func mapping10k(version int) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\ndata:\n  mapRoles: |\n")
	for i := 0; i < 7000; i++ {
		fmt.Fprintf(&b, "    - rolearn: arn:aws:iam::111122223333:role/role-%d\n      username: role-%d-v%d:{{SessionName}}\n      groups:\n        - team-%d\n        - viewers\n", i, i, version, i%50)
		if i%10 == 0 {
			fmt.Fprintf(&b, "      userid: AROA%017d\n", i)
		}
	}
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "    - sso:\n        permissionSetName: PermSet%d\n        accountID: \"%012d\"\n      username: sso-%d\n      groups: [sso-users]\n", i, 222200000000+i%20, i)
	}
	b.WriteString("  mapUsers: |\n")
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&b, "    - userarn: arn:aws:iam::111122223333:user/user-%d\n      username: user-%d\n      groups: [users]\n", i, i)
	}
	b.WriteString("  mapAccounts: |\n")
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "    - \"%012d\"\n", 333300000000+i)
	}
	return []byte(b.String())
}

func parse10k(b *testing.B) *Snapshot {
	b.Helper()
	snap, err := Parse(mapping10k(0))
	if err != nil {
		b.Fatal(err)
	}
	if got := snap.Counts().Total(); got != 10000 {
		b.Fatalf("fixture has %d entries, want 10000", got)
	}
	return snap
}

func benchLookup(b *testing.B, id identity.Identity) {
	snap := parse10k(b)
	if _, err := snap.Lookup(id); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		if _, err := snap.Lookup(id); err != nil {
			b.Fatal(err)
		}
	}
	cpu.reportNanos(b)
}

// BenchmarkLookup10k is one lookup of a role (mixed-case ARN) among 10,000
// entries.
func BenchmarkLookup10k(b *testing.B) {
	benchLookup(b, identity.Identity{CanonicalARN: "arn:aws:iam::111122223333:role/Role-4242", AccountID: "111122223333", SessionName: "s"})
}

// BenchmarkLookup10kSSO resolves an SSO role name to its permission set.
func BenchmarkLookup10kSSO(b *testing.B) {
	benchLookup(b, identity.Identity{CanonicalARN: "arn:aws:iam::222200000007:role/AWSReservedSSO_PermSet7_0123456789abcdef", AccountID: "222200000007"})
}

// BenchmarkLookup10kAccount falls through roles to mapAccounts.
func BenchmarkLookup10kAccount(b *testing.B) {
	benchLookup(b, identity.Identity{CanonicalARN: "arn:aws:iam::333300000042:role/Anything", AccountID: "333300000042"})
}

// BenchmarkMap10k is the whole Map of a templated role: lookup, render,
// reserved-prefix checks and the returned User.
func BenchmarkMap10k(b *testing.B) {
	m, err := NewMapper(MapperOptions{Snapshots: StaticSource{Snapshot: parse10k(b)}})
	if err != nil {
		b.Fatal(err)
	}
	id := identity.Identity{CanonicalARN: "arn:aws:iam::111122223333:role/role-4243", AccountID: "111122223333", SessionName: "alice@example.com"}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		if _, err := m.Map(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	cpu.reportNanos(b)
}

// BenchmarkParse10k parses and validates 10,000 entries.
func BenchmarkParse10k(b *testing.B) {
	data := mapping10k(0)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkReload10k is one Store reload of a changed 10,000-entry file:
// read, hash, parse, validate, swap, metrics.
func BenchmarkReload10k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "aws-auth.yaml")
	versions := [2][]byte{mapping10k(1), mapping10k(2)}
	m, err := NewMetrics(nopRegisterer{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewStore(StoreOptions{Path: path, Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := os.WriteFile(path, versions[i%2], 0o644); err != nil {
			b.Fatal(err)
		}
		c := startCPU()
		b.StartTimer()
		if result, err := s.reload(); err != nil || result != ResultSuccess {
			b.Fatalf("reload = %s, %v", result, err)
		}
		b.StopTimer()
		cpu += c.elapsed()
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// cpuClock measures the process's CPU time (user+system, GC included). On a
// shared machine ns/op counts the time spent waiting for a core; cpu-ms/op
// is the work itself.
type cpuClock struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{start: processCPU()} }

func (c cpuClock) elapsed() time.Duration { return processCPU() - c.start }

func (c cpuClock) reportNanos(b *testing.B) {
	b.ReportMetric(float64(c.elapsed().Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(c.elapsed().Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// nopRegisterer accepts every collector without exporting it.
type nopRegisterer struct{}

func (nopRegisterer) Register(prometheus.Collector) error  { return nil }
func (nopRegisterer) MustRegister(...prometheus.Collector) {}
func (nopRegisterer) Unregister(prometheus.Collector) bool { return true }
