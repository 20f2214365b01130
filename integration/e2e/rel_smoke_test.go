//go:build integration

package e2e

import (
	"strings"
	"testing"
)

// TestRelStackSmoke: the reliability stack works end to end before any fault is
// injected (a mapped token is 200, kubectl whoami names the mapped user).
func TestRelStackSmoke(t *testing.T) {
	s := newRelStack(t, relOptions{})
	tok := s.token(t, "alice")
	if r := s.get(t, tok); r.status != 200 {
		t.Fatalf("GET /version = %d %v %s", r.status, r.err, r.body)
	}
	out, errOut, err := s.kubectl(t, tok, "auth", "whoami")
	if err != nil || !strings.Contains(out, "dev:alice") {
		t.Fatalf("kubectl auth whoami: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
}
