package harness

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"
)

func TestFreeAddrIsBindableLoopback(t *testing.T) {
	addr := FreeAddr(t)
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("FreeAddr = %q (%v), want 127.0.0.1:port", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("bind %s: %v", addr, err)
	}
	_ = l.Close()
}

func TestCAIssuesVerifiableServerCerts(t *testing.T) {
	ca := NewCA(t)
	cert := ca.Issue(t, "server", "kubernetes.default.svc", "127.0.0.1")
	leaf, err := x509.ParseCertificate(cert.TLS.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		name    string
		wantErr bool
	}{
		"DNS SAN":   {name: "kubernetes.default.svc"},
		"IP SAN":    {name: "127.0.0.1"},
		"other DNS": {name: "evil.example", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: tc.name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Verify(%s) = %v, wantErr %v", tc.name, err, tc.wantErr)
			}
		})
	}
	// The files round-trip through a TLS handshake.
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "kubernetes.default.svc"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	_ = c.Close()
}

func TestProcessStopAndEarlyExit(t *testing.T) {
	p := StartProcess(t, "sleeper", "/bin/sh", "-c", "echo started; echo oops >&2; exec sleep 60")
	err := p.waitFor(5*time.Second, func() error {
		if strings.Contains(p.Stdout(), "started") {
			return nil
		}
		return errNotReady
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.Stop()
	if exited, _ := p.Exited(); !exited {
		t.Fatal("process still running after Stop")
	}
	if time.Since(start) > stopGrace {
		t.Fatalf("Stop took %s: SIGTERM was not enough?", time.Since(start))
	}
	if !strings.Contains(p.Stderr(), "oops") {
		t.Fatalf("stderr not captured: %q", p.Stderr())
	}

	dead := StartProcess(t, "dies", "/bin/sh", "-c", "echo bad config >&2; exit 3")
	err = dead.waitFor(5*time.Second, func() error { return errNotReady })
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "bad config") {
		t.Fatalf("waitFor on a dying process = %v, want an early-exit error with its stderr", err)
	}
}
