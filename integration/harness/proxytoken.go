package harness

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// proxyTokenTTL is the proxy token's lifetime: the shortest the TokenRequest API
	// grants (10 minutes).
	proxyTokenTTL = 10 * time.Minute
	// proxyTokenRefreshAt is the fraction of the lifetime after which a new token is
	// fetched: the kubelet rotates a projected token at 80 % of its TTL.
	proxyTokenRefreshAt = 0.8
	// proxyTokenRetry is how soon a failed refresh is tried again (the old token
	// is still valid for 20 % of its life).
	proxyTokenRetry = 5 * time.Second
	// CredentialIDExtra is the user extra in which the API server names the
	// service-account token that authenticated a request ("JTI=" + its jti claim).
	CredentialIDExtra = "authentication.kubernetes.io/credential-id"
)

// ProxyToken is the proxy service account's credential on a KubeAPIServer: a token
// from the TokenRequest API (a JWT, expiring), in a directory laid out like a
// projected volume, replaced at 80 % of its lifetime the way the kubelet rotates a
// projected token. Each chain has its own, so the audit log tells chains apart by
// the token's id (CredentialIDExtra) although they share one service account.
type ProxyToken struct {
	// Volume holds ProxyTokenFileName (serve's --upstream-token-file).
	Volume *ProjectedDir

	k        *KubeAPIServer
	rotateMu sync.Mutex // one rotation at a time
	mu       sync.Mutex
	ids      []string  // credential ids of every token written, oldest first
	until    time.Time // expiry of the token in the volume
	err      error     // last refresh failure, nil after a success
	stop     chan struct{}
	stopped  chan struct{}
}

// NewProxyToken requests a token for the proxy's service account, writes it and
// keeps it fresh until the test ends.
func (k *KubeAPIServer) NewProxyToken(t testing.TB) *ProxyToken {
	t.Helper()
	p := &ProxyToken{
		Volume:  NewProjectedDir(t, map[string][]byte{}),
		k:       k,
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	if _, err := p.rotate(); err != nil {
		t.Fatalf("harness: proxy token: %v", err)
	}
	go p.refresh(time.Now(), p.Expiry())
	t.Cleanup(func() {
		close(p.stop)
		<-p.stopped
		if err := p.Err(); err != nil && t.Failed() {
			t.Logf("proxy token refresh: %v", err)
		}
	})
	return p
}

func (p *ProxyToken) refresh(issued, until time.Time) {
	defer close(p.stopped)
	next := refreshTime(issued, until)
	for {
		select {
		case <-p.stop:
			return
		case <-time.After(time.Until(next)):
		}
		now := time.Now()
		newUntil, err := p.rotate()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		if err != nil {
			next = now.Add(proxyTokenRetry)
			continue
		}
		next = refreshTime(now, newUntil)
	}
}

// refreshTime is when a token issued at issued and valid until until is replaced.
func refreshTime(issued, until time.Time) time.Time {
	return issued.Add(time.Duration(float64(until.Sub(issued)) * proxyTokenRefreshAt))
}

// rotate writes a new TokenRequest token into the volume.
func (p *ProxyToken) rotate() (time.Time, error) {
	p.rotateMu.Lock()
	defer p.rotateMu.Unlock()
	tok, until, err := p.k.RequestToken(ProxyNamespace, ProxyServiceAccount, proxyTokenTTL)
	if err != nil {
		return time.Time{}, err
	}
	id, err := CredentialID(tok)
	if err != nil {
		return time.Time{}, err
	}
	if err := p.Volume.update(map[string][]byte{ProxyTokenFileName: []byte(tok)}); err != nil {
		return time.Time{}, err
	}
	p.mu.Lock()
	p.ids = append(p.ids, id)
	p.until = until
	p.mu.Unlock()
	return until, nil
}

// Rotate replaces the token now, as the refresher does at 80 % of its lifetime, and
// returns the new one. The earlier one stays valid until it expires.
func (p *ProxyToken) Rotate(t testing.TB) string {
	t.Helper()
	if _, err := p.rotate(); err != nil {
		t.Fatalf("harness: rotate the proxy token: %v", err)
	}
	b, err := os.ReadFile(p.Volume.Path(ProxyTokenFileName))
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return string(b)
}

// Expiry is when the token in the volume expires.
func (p *ProxyToken) Expiry() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.until
}

// Err is the last refresh failure (nil when the last one worked).
func (p *ProxyToken) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Authenticated reports whether one of this ProxyToken's tokens authenticated the
// audited request: the request came through this chain's proxy.
func (p *ProxyToken) Authenticated(e AuditEvent) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range e.User.Extra[CredentialIDExtra] {
		if slices.Contains(p.ids, id) {
			return true
		}
	}
	return false
}

// CredentialID is how the API server names a service-account token in the audit
// log (CredentialIDExtra): "JTI=" + the JWT's jti claim. It fails unless tok is a
// JWT for the proxy's service account with a jti.
func CredentialID(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("the proxy token is not a JWT (%d parts)", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("the proxy token's claims: %w", err)
	}
	var claims struct {
		JTI string `json:"jti"`
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", fmt.Errorf("the proxy token's claims: %w", err)
	}
	if claims.Sub != ProxyUsername || claims.JTI == "" {
		return "", fmt.Errorf("proxy token claims sub=%q jti=%q, want %s with a jti", claims.Sub, claims.JTI, ProxyUsername)
	}
	return "JTI=" + claims.JTI, nil
}
