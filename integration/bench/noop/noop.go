// Package noop is the baseline ext_authz server of the benchmarks: it
// answers every Check with the same prebuilt OK response and does no work
// at all. Run beside `kube-iam-authz serve` with the same gRPC server
// (package server), it measures what the gRPC hop itself costs, so the
// benchmark can report our cost as a ratio to it instead of an absolute
// number that depends on the machine.
package noop

import (
	"context"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/kube-iam-authz/kube-iam-authz/envoy"
)

// Answer is the fixed identity the no-op server impersonates. Its shape
// (the Impersonate-* headers, the upstream credential, group slots and a
// decision id) matches what kube-iam-authz sends for a mapped user, so both
// servers put the same bytes on the wire and the API server behind Envoy
// does the same work for either.
type Answer struct {
	// Headers are set on the upstream request (name, value), e.g.
	// impersonate-user, impersonate-uid, impersonate-extra-*.
	Headers [][2]string
	// Groups go into the dynamic metadata group slots.
	Groups []string
	// Bearer replaces the client's Authorization.
	Bearer string
}

// Server implements envoy.service.auth.v3.Authorization with one
// prebuilt response.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	resp *authv3.CheckResponse
}

// New prebuilds the response for a.
func New(a Answer) *Server {
	set := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: v},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}
	}
	md := map[string]*structpb.Value{
		envoy.MetadataDecisionID: structpb.NewStringValue("0000000000000000"),
	}
	for i, g := range a.Groups {
		md[envoy.GroupSlotKey(i)] = structpb.NewStringValue(g)
	}
	var headers []*corev3.HeaderValueOption
	for _, h := range a.Headers {
		headers = append(headers, set(h[0], h[1]))
	}
	headers = append(headers, set("authorization", "Bearer "+a.Bearer))
	return &Server{resp: &authv3.CheckResponse{
		Status:          &status.Status{Code: int32(codes.OK)},
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{Headers: headers}},
		DynamicMetadata: &structpb.Struct{Fields: md},
	}}
}

// Check answers OK. The response is shared and never modified: grpc-go
// only reads it while marshalling.
func (s *Server) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.resp, nil
}

// Register adds the Authorization service to g.
func (s *Server) Register(g grpc.ServiceRegistrar) { authv3.RegisterAuthorizationServer(g, s) }

// Ready is always true: there is nothing to load.
func (s *Server) Ready() bool { return true }
