//go:build integration

package bench

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/kube-iam-authz/kube-iam-authz/integration/bench/noop"
)

// countingServer answers every Check with resp and counts the Checks it
// received with the bench request's token.
type countingServer struct {
	authv3.UnimplementedAuthorizationServer
	resp  *authv3.CheckResponse
	token string
	calls atomic.Int64
	wrong atomic.Int64
}

func (s *countingServer) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s.calls.Add(1)
	found := false
	for _, h := range req.GetAttributes().GetRequest().GetHttp().GetHeaderMap().GetHeaders() {
		found = found || (h.GetKey() == "authorization" && string(h.GetRawValue()) == "Bearer "+s.token)
	}
	if !found {
		s.wrong.Add(1)
	}
	return s.resp, nil
}

func serveGRPC(t *testing.T, srv authv3.AuthorizationServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, srv)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// TestLoadClientCountsAnswers proves the case-1 load generator's counts:
// every OK answer is a call, every Denied answer a failure, and the server
// receives exactly the CheckRequest the bench builds (the pre-marshalled
// bytes decode to it). Counts, not timings.
func TestLoadClientCountsAnswers(t *testing.T) {
	const tok = "k8s-aws-v1.bench-token"
	okResp, err := noop.New(noop.Answer{Bearer: "x", Groups: []string{"g"}}).Check(context.Background(), nil)
	must(t, err)
	ok := &countingServer{token: tok, resp: okResp}
	denied := &countingServer{token: tok, resp: &authv3.CheckResponse{
		Status: &status.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}}},
	}}
	// A non-zero status code with an ok_response is still not OK.
	mixed := &countingServer{token: tok, resp: &authv3.CheckResponse{
		Status:       &status.Status{Code: int32(codes.Unavailable)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}}
	for _, tc := range []struct {
		name       string
		srv        *countingServer
		wantOK     bool
		wantErrAll error
	}{
		{name: "ok", srv: ok, wantOK: true},
		{name: "denied", srv: denied, wantErrAll: errNotOKAnswer},
		{name: "code-unavailable-with-ok-response", srv: mixed, wantErrAll: errNotOKAnswer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialLoad(serveGRPC(t, tc.srv))
			must(t, err)
			defer c.close()
			res, err := c.run(checkRequest(tok), 4, 200*time.Millisecond)
			must(t, err)
			got := int64(res.calls + res.failed)
			if got == 0 || got != tc.srv.calls.Load() {
				t.Fatalf("client counted %d calls+failures, server answered %d", got, tc.srv.calls.Load())
			}
			if w := tc.srv.wrong.Load(); w != 0 {
				t.Fatalf("%d requests did not carry the bench token", w)
			}
			if tc.wantOK {
				if res.failed != 0 || res.firstErr != nil {
					t.Fatalf("failed %d, first error %v", res.failed, res.firstErr)
				}
				if res.p50 <= 0 || res.p99 < res.p50 || res.rps <= 0 {
					t.Fatalf("implausible figures: p50 %v p99 %v rps %v", res.p50, res.p99, res.rps)
				}
				return
			}
			if res.calls != 0 || !errors.Is(res.firstErr, tc.wantErrAll) {
				t.Fatalf("calls %d, first error %v; want 0 and %v", res.calls, res.firstErr, tc.wantErrAll)
			}
		})
	}
}
