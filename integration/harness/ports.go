package harness

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

// Ports are picked from [portLow, portHigh), below Linux's default ephemeral
// range (32768–60999). A port taken from the ephemeral range by listening on
// :0 and closing can be handed to any outgoing connection on the machine
// before the child process binds it ("address already in use" under
// -parallel); ports below the range are only ever taken by an explicit bind.
const (
	portLow  = 20000
	portHigh = 32000
)

// handedOut keeps this test process from handing the same port out twice.
var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

// FreeAddr returns "127.0.0.1:port" for a port that was free a moment ago and
// that this process has not handed out before. Different test processes pick
// at random from a range of 12,000 ports, so they rarely meet.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return addr
}

func freeAddr() (string, error) {
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for range 200 {
		port := portLow + rand.IntN(portHigh-portLow)
		if handedOut[port] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		if err := l.Close(); err != nil {
			return "", fmt.Errorf("release port %s: %w", addr, err)
		}
		handedOut[port] = true
		return addr, nil
	}
	return "", fmt.Errorf("no free port in [%d, %d) after 200 tries", portLow, portHigh)
}
