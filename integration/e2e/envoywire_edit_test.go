//go:build integration

package e2e

import (
	"io"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kube-iam-authz/kube-iam-authz/envoy"
)

// Variants of the reviewed config for tests that need a shorter clock or the other
// header encoding; everything else stays as reviewed.

func setAuthzTimeout(d time.Duration) func(*bootstrapv3.Bootstrap) error {
	return func(b *bootstrapv3.Bootstrap) error {
		return envoy.Edit(b, func(a *extauthzv3.ExtAuthz) error {
			a.GetGrpcService().Timeout = durationpb.New(d)
			return nil
		})
	}
}

func setEncodeRawHeaders(v bool) func(*bootstrapv3.Bootstrap) error {
	return func(b *bootstrapv3.Bootstrap) error {
		return envoy.Edit(b, func(a *extauthzv3.ExtAuthz) error {
			a.EncodeRawHeaders = v
			return nil
		})
	}
}

func setMaxStreamDuration(d time.Duration) func(*bootstrapv3.Bootstrap) error {
	return func(b *bootstrapv3.Bootstrap) error {
		return envoy.Edit(b, func(h *hcmv3.HttpConnectionManager) error {
			h.CommonHttpProtocolOptions.MaxStreamDuration = durationpb.New(d)
			return nil
		})
	}
}

func ioReadFull(r io.Reader, buf []byte) (int, error) { return io.ReadFull(r, buf) }

func ioCopyDiscard(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }
