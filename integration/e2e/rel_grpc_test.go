//go:build integration

package e2e

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// checkClient calls a server's ext_authz Check directly, the way Envoy does with
// encode_raw_headers (header_map, raw values).
type checkClient struct {
	client authv3.AuthorizationClient
}

func newCheckClient(t *testing.T, addr string) *checkClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &checkClient{client: authv3.NewAuthorizationClient(conn)}
}

// check sends one CheckRequest with the given header lines (name, value pairs).
func (c *checkClient) check(t *testing.T, ext map[string]string, lines ...string) *authv3.CheckResponse {
	t.Helper()
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(lines); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: lines[i], RawValue: []byte(lines[i+1])})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.client.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/version", Host: "127.0.0.1", Scheme: "https", HeaderMap: hm,
		}},
		ContextExtensions: ext,
	}}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

// status is the HTTP status Envoy would answer for a request with this bearer token:
// 200 for OK, the denial's status otherwise.
func (c *checkClient) status(t *testing.T, tok string) int {
	t.Helper()
	resp := c.check(t, nil, "authorization", "Bearer "+tok)
	if resp.GetOkResponse() != nil {
		return 200
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode())
}
