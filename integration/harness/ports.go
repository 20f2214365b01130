package harness

import (
	"net"
	"testing"
)

// FreeAddr returns "127.0.0.1:port" for a port that was free a moment ago. The kernel
// does not hand the same ephemeral port out again soon, which is good enough for tests
// that bind it right away.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: pick free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("harness: release port %s: %v", addr, err)
	}
	return addr
}
