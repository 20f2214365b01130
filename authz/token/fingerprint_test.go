package token

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestFingerprint(t *testing.T) {
	for name, tok := range map[string]string{
		"empty":            "",
		"short":            "k8s-aws-v1.abc",
		"one buffer":       strings.Repeat("a", 512),
		"several buffers":  "k8s-aws-v1." + strings.Repeat("aHR0cHM6Ly9zdHMu", 200),
		"buffer plus one":  strings.Repeat("b", 513),
		"non-ASCII, bytes": "\xff\x00é",
	} {
		t.Run(name, func(t *testing.T) {
			sum := sha256.Sum256([]byte(tok))
			if got, want := Fingerprint(tok), hex.EncodeToString(sum[:6]); got != want {
				t.Errorf("Fingerprint = %q, want %q", got, want)
			}
		})
	}
}

func BenchmarkFingerprint(b *testing.B) {
	tok := "k8s-aws-v1." + strings.Repeat("aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8", 42)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = Fingerprint(tok)
	}
}
