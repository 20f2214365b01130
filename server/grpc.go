// Package server runs the kube-iam-authz listeners: the ext_authz gRPC
// server (with the gRPC health and reflection services) and the HTTP
// server for /metrics, /healthz and /readyz, with graceful shutdown.
package server

import (
	"crypto/tls"
	"math"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// gRPC tuning. Envoy multiplexes every Check of a worker thread over one
// long-lived HTTP/2 connection, so the limits are per connection and must
// leave Envoy's pooled connection alone.
const (
	// maxConcurrentStreams bounds in-flight Checks per connection. grpc-go's
	// default is unlimited; Envoy's HTTP/2 pool honours
	// SETTINGS_MAX_CONCURRENT_STREAMS and opens another connection when a
	// connection is full, so a bound costs nothing and caps memory under a
	// burst of cache misses.
	maxConcurrentStreams = 1024
	// maxRecvMsgSize bounds one CheckRequest. It carries the request
	// headers, which Envoy itself caps (max_request_headers_kb, 60 KiB by
	// default, at most 8 MiB); 1 MiB leaves room for a raised Envoy limit
	// and encoding overhead, and is a quarter of grpc-go's 4 MiB default.
	maxRecvMsgSize = 1 << 20
	// keepaliveMinTime is the shortest client ping interval tolerated.
	// grpc-go closes a connection with GOAWAY "too_many_pings" when a
	// client pings more often; Envoy's http2 connection_keepalive is often
	// set to a few seconds, so the policy is lenient.
	keepaliveMinTime = 5 * time.Second
	// keepaliveTime: the server pings a connection idle for this long, to
	// find dead peers (a killed Envoy) and keep NAT/conntrack state alive.
	keepaliveTime = 60 * time.Second
	// keepaliveTimeout: a ping unanswered for this long closes the
	// connection.
	keepaliveTimeout = 20 * time.Second
	// connectionTimeout bounds the connection handshake (TLS included), so
	// a silent peer cannot hold a goroutine.
	connectionTimeout = 10 * time.Second
)

// newGRPCServer builds the gRPC server. Connections are never aged out
// (MaxConnectionAge stays infinite): Envoy's connection is the only client
// and a forced reconnect would only add latency to the next Check.
func newGRPCServer(tlsConfig *tls.Config) *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		grpc.MaxRecvMsgSize(maxRecvMsgSize),
		grpc.ConnectionTimeout(connectionTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: keepaliveMinTime,
			// Envoy may ping an idle pooled connection with no stream open.
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:                  keepaliveTime,
			Timeout:               keepaliveTimeout,
			MaxConnectionIdle:     time.Duration(math.MaxInt64),
			MaxConnectionAge:      time.Duration(math.MaxInt64),
			MaxConnectionAgeGrace: time.Duration(math.MaxInt64),
		}),
	}
	if tlsConfig != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	return grpc.NewServer(opts...)
}
