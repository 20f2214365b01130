package server

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/kube-iam-authz/kube-iam-authz/integration/harness"
)

// fakeAuthorizer answers OK after an optional block, and reports the
// readiness it is told.
type fakeAuthorizer struct {
	authv3.UnimplementedAuthorizationServer
	ready   atomic.Bool
	block   chan struct{}
	entered chan struct{}
}

func (f *fakeAuthorizer) Register(g grpc.ServiceRegistrar) { authv3.RegisterAuthorizationServer(g, f) }
func (f *fakeAuthorizer) Ready() bool                      { return f.ready.Load() }
func (f *fakeAuthorizer) Check(ctx context.Context, _ *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	if f.block != nil {
		f.entered <- struct{}{}
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &authv3.CheckResponse{}, nil
}

type running struct {
	grpcAddr, httpAddr string
	cancel             context.CancelFunc
	done               chan error
	conn               *grpc.ClientConn
}

func start(t *testing.T, a *fakeAuthorizer, grace time.Duration) *running {
	t.Helper()
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "kube_iam_authz_test_total", Help: "t"}))
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{grpcAddr: gl.Addr().String(), httpAddr: hl.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- Run(ctx, Options{
			GRPCListener: gl, HTTPListener: hl, Authorizer: a, Gatherer: reg, Logger: zap.NewNop(),
			ShutdownGrace: grace, ReadyInterval: 5 * time.Millisecond,
		})
	}()
	conn, err := grpc.NewClient(r.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	r.conn = conn
	t.Cleanup(func() {
		cancel()
		conn.Close()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	return r
}

func TestHealthFollowsReadiness(t *testing.T) {
	a := &fakeAuthorizer{}
	r := start(t, a, time.Second)
	hc := healthpb.NewHealthClient(r.conn)
	ctx := context.Background()
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		waitFor(t, func() bool {
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING
		}, "NOT_SERVING before the mapping is loaded")
	}
	if code, _ := get(t, "http://"+r.httpAddr+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before ready = %d, want 503", code)
	}
	a.ready.Store(true)
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		waitFor(t, func() bool {
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		}, "SERVING once ready")
	}
	if code, _ := get(t, "http://"+r.httpAddr+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz when ready = %d, want 200", code)
	}
	if code, _ := get(t, "http://"+r.httpAddr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	code, body := get(t, "http://"+r.httpAddr+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "kube_iam_authz_test_total") {
		t.Errorf("/metrics = %d %q", code, body)
	}
	if code, _ := get(t, "http://"+r.httpAddr+"/nope"); code != http.StatusNotFound {
		t.Errorf("/nope = %d, want 404", code)
	}
}

func TestReflectionListsServices(t *testing.T) {
	r := start(t, &fakeAuthorizer{}, time.Second)
	stream, err := reflectionpb.NewServerReflectionClient(r.conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	joined := strings.Join(names, ",")
	for _, want := range []string{"envoy.service.auth.v3.Authorization", "grpc.health.v1.Health"} {
		if !strings.Contains(joined, want) {
			t.Errorf("reflection services %v lack %s", names, want)
		}
	}
}

func TestGracefulShutdownFinishesInFlightChecks(t *testing.T) {
	a := &fakeAuthorizer{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	r := start(t, a, 5*time.Second)
	result := make(chan error, 1)
	go func() {
		_, err := authv3.NewAuthorizationClient(r.conn).Check(context.Background(), &authv3.CheckRequest{})
		result <- err
	}()
	<-a.entered
	r.cancel()
	// The server is draining: the in-flight Check is still answered.
	time.Sleep(50 * time.Millisecond)
	close(a.block)
	if err := <-result; err != nil {
		t.Errorf("in-flight Check failed during graceful shutdown: %v", err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
		r.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
}

func TestShutdownGraceBoundsAHungCheck(t *testing.T) {
	a := &fakeAuthorizer{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	r := start(t, a, 100*time.Millisecond)
	go func() {
		_, _ = authv3.NewAuthorizationClient(r.conn).Check(context.Background(), &authv3.CheckRequest{})
	}()
	<-a.entered
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
		r.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the grace period")
	}
}

func TestOptionsValidate(t *testing.T) {
	o := Options{TLSCertFile: "c", ShutdownGrace: -1}
	err := o.Validate()
	if err == nil {
		t.Fatal("Validate accepted empty options")
	}
	for _, want := range []string{"gRPC listen", "HTTP listen", "TLS", "Authorizer", "Gatherer", "Logger", "negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q: %v", want, err)
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGRPCTLS(t *testing.T) {
	ca := harness.NewCA(t)
	cert := ca.Issue(t, "authz", "127.0.0.1")
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			GRPCListener: gl, HTTPListener: hl, TLSCertFile: cert.CertFile, TLSKeyFile: cert.KeyFile,
			Authorizer: &fakeAuthorizer{}, Gatherer: prometheus.NewRegistry(), Logger: zap.NewNop(),
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	tlsConn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	defer tlsConn.Close()
	if _, err := authv3.NewAuthorizationClient(tlsConn).Check(context.Background(), &authv3.CheckRequest{}); err != nil {
		t.Errorf("Check over TLS: %v", err)
	}
	plain, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctxShort, cancelShort := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShort()
	if _, err := authv3.NewAuthorizationClient(plain).Check(ctxShort, &authv3.CheckRequest{}); err == nil {
		t.Error("a plaintext client reached the TLS listener")
	}
}

func TestBadTLSFilesFailAtStart(t *testing.T) {
	err := Run(context.Background(), Options{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", TLSCertFile: "/nonexistent.crt", TLSKeyFile: "/nonexistent.key",
		Authorizer: &fakeAuthorizer{}, Gatherer: prometheus.NewRegistry(), Logger: zap.NewNop(),
	})
	if err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Errorf("Run = %v, want a TLS error", err)
	}
}
