package server

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

func pairFiles(t *testing.T, c *harness.Cert) map[string][]byte {
	t.Helper()
	crt, err := os.ReadFile(c.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{"tls.crt": crt, "tls.key": key}
}

// servedSerial opens a new TLS connection and returns the serial of the
// certificate the server presented.
func servedSerial(t *testing.T, addr string, ca *harness.CA) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
}

// TestGRPCKeyPairRotation: the gRPC listener follows its key pair when the
// Secret volume is updated the kubelet way (..data symlink swap): new
// connections get the new certificate, the established one keeps working, a
// broken pair keeps the last good one (failure counted and logged), and
// the expiry gauge follows the served certificate.
func TestGRPCKeyPairRotation(t *testing.T) {
	ca := harness.NewCA(t)
	first := ca.Issue(t, "first", "127.0.0.1")
	second := ca.Issue(t, "second", "127.0.0.1")
	third := ca.Issue(t, "third", "127.0.0.1")
	serial := func(c *harness.Cert) string { return c.TLS.Leaf.SerialNumber.Text(16) }
	vol := harness.NewProjectedDir(t, pairFiles(t, first))

	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			GRPCListener: gl, HTTPListener: hl, TLSCertFile: vol.Path("tls.crt"), TLSKeyFile: vol.Path("tls.key"),
			// Only the directory watch can make this test pass in time.
			TLSReloadInterval: time.Hour,
			Authorizer:        &fakeAuthorizer{}, Gatherer: reg, Registerer: reg, Logger: zap.New(core),
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	addr := gl.Addr().String()
	reloads := func(result string) float64 {
		return metricValue(t, reg, "kube_iam_authz_grpc_tls_reloads_total", result)
	}
	notAfter := func() float64 {
		return metricValue(t, reg, "kube_iam_authz_grpc_tls_cert_not_after_timestamp_seconds", "")
	}

	waitFor(t, func() bool { return servedSerial(t, addr, ca) == serial(first) }, "the first certificate")
	if got, want := notAfter(), float64(first.TLS.Leaf.NotAfter.Unix()); got != want {
		t.Errorf("not_after gauge %v, want %v", got, want)
	}
	// One long-lived client connection, like Envoy's.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	if _, err := client.Check(context.Background(), &authv3.CheckRequest{}); err != nil {
		t.Fatalf("Check: %v", err)
	}

	vol.Update(t, pairFiles(t, second))
	waitFor(t, func() bool { return servedSerial(t, addr, ca) == serial(second) }, "the rotated certificate on new connections")
	if got, want := notAfter(), float64(second.TLS.Leaf.NotAfter.Unix()); got != want {
		t.Errorf("after rotation: not_after gauge %v, want %v", got, want)
	}
	if _, err := client.Check(context.Background(), &authv3.CheckRequest{}); err != nil {
		t.Errorf("Check on the connection made before the rotation: %v", err)
	}
	if logs.FilterMessage("gRPC TLS certificate reloaded").Len() == 0 {
		t.Errorf("no reload log line")
	}

	// A broken pair: the third certificate with the second's key.
	failuresBefore := reloads("failure")
	broken := pairFiles(t, third)
	broken["tls.key"] = pairFiles(t, second)["tls.key"]
	vol.Update(t, broken)
	waitFor(t, func() bool { return reloads("failure") > failuresBefore }, "a failed reload of the broken pair")
	if got := servedSerial(t, addr, ca); got != serial(second) {
		t.Errorf("after a broken pair: serving %s, want the last good %s", got, serial(second))
	}
	if got, want := notAfter(), float64(second.TLS.Leaf.NotAfter.Unix()); got != want {
		t.Errorf("after a broken pair: not_after gauge %v, want the last good %v", got, want)
	}
	var warned bool
	for _, e := range logs.FilterMessage("gRPC TLS key pair reload failed; keeping the last good certificate").All() {
		warned = warned || strings.Contains(e.ContextMap()["error"].(string), "private key does not match")
	}
	if !warned {
		t.Errorf("no warning naming the mismatched key")
	}

	// Repaired: the third pair is served.
	vol.Update(t, pairFiles(t, third))
	waitFor(t, func() bool { return servedSerial(t, addr, ca) == serial(third) }, "the repaired pair")
}

func TestGRPCKeyPairBrokenAtStart(t *testing.T) {
	ca := harness.NewCA(t)
	a, b := ca.Issue(t, "a", "127.0.0.1"), ca.Issue(t, "b", "127.0.0.1")
	err := Run(context.Background(), Options{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", TLSCertFile: a.CertFile, TLSKeyFile: b.KeyFile,
		Authorizer: &fakeAuthorizer{}, Gatherer: prometheus.NewRegistry(), Logger: zap.NewNop(),
	})
	if err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Errorf("Run = %v, want the mismatch named", err)
	}
}

// metricValue is the value of the counter or gauge name (with the label
// result, unless result is empty) in g.
func metricValue(t *testing.T, g prometheus.Gatherer, name, result string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := result == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					match = true
				}
			}
			if match {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{result=%q}", name, result)
	return 0
}
