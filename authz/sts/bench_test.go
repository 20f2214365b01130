package sts

import (
	"context"
	"testing"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/internal/testutil/stsfixture"
)

// BenchmarkGetCallerIdentity is one STS round trip over loopback HTTPS to
// the stand-in (connection reused): the client's own overhead plus the
// stand-in's SigV4 check, without network latency.
func BenchmarkGetCallerIdentity(b *testing.B) {
	fake := stsfixture.Start(b, time.Now)
	c, err := New(Options{Endpoint: fake.URL, CAFile: fake.CAFile})
	if err != nil {
		b.Fatal(err)
	}
	p := signed(b, userCreds, "sts.amazonaws.com", ourCluster, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GetCallerIdentity(context.Background(), p, ourCluster); err != nil {
			b.Fatal(err)
		}
	}
}
