package token

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readFuzzSeed reads a one-string corpus file of `go test fuzz v1` format.
func readFuzzSeed(t testing.TB, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "string(") {
		t.Fatalf("%s is not a one-string fuzz seed", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

// benchSessionToken is shaped like an STS session token of an assumed role
// (about 1 KiB of standard base64), percent-encoded the way SigV4 does.
func benchSessionToken() string {
	const chunk = "IQoJb3JpZ2luX2VjEFYaCXVzLWVhc3QtMSJHMEUCIQD+Ab/Cd=="
	var b strings.Builder
	for b.Len() < 1100 {
		b.WriteString(chunk)
	}
	r := strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D")
	return r.Replace(b.String())
}

// BenchmarkVerifyParse measures the local part of every verification: a
// session-token-sized token (about 2 KiB), all rules, no network.
func BenchmarkVerifyParse(b *testing.B) {
	p := newTestParser(b, Options{})
	tok := B(strings.Replace(usw2(), "&X-Amz-Signature=", "&X-Amz-Security-Token="+benchSessionToken()+"&X-Amz-Signature=", 1))
	if _, err := p.Parse(tok); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(tok)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyParseReject is the cost of refusing garbage of the
// maximum size: the cap is checked first, then the prefix.
func BenchmarkVerifyParseReject(b *testing.B) {
	p := newTestParser(b, Options{Now: func() time.Time { return testNow }})
	tok := Prefix + strings.Repeat("A", DefaultMaxTokenBytes-len(Prefix)-1) + "="
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse(tok); err == nil {
			b.Fatal("accepted")
		}
	}
}

func BenchmarkNewParser(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewParser(Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
