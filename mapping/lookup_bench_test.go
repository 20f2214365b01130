package mapping

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
)

// benchMapping is an aws-auth of n role and n user entries, the role
// entries templated like EKS node and developer roles.
func benchMapping(n int) []byte {
	var b strings.Builder
	b.WriteString("mapRoles:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - rolearn: arn:aws:iam::111122223333:role/team-%05d\n    username: \"team-%05d:{{SessionName}}\"\n    groups: [devs, \"team-%d\"]\n", i, i, i%50)
	}
	b.WriteString("mapUsers:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - userarn: arn:aws:iam::111122223333:user/user-%05d\n    username: user-%05d\n    groups: [viewers]\n", i, i)
	}
	return []byte(b.String())
}

// BenchmarkMapperMap is one mapping lookup on the hot path: a role session
// matched in a 10k-row mapping and its username template rendered.
func BenchmarkMapperMap(b *testing.B) {
	for _, n := range []int{10, 5_000} {
		b.Run(fmt.Sprintf("rows=%d", 2*n), func(b *testing.B) {
			snap, err := Parse(benchMapping(n))
			if err != nil {
				b.Fatal(err)
			}
			m, err := NewMapper(MapperOptions{Snapshots: StaticSource{Snapshot: snap}})
			if err != nil {
				b.Fatal(err)
			}
			id, err := identity.FromSTS(fmt.Sprintf("arn:aws:sts::111122223333:assumed-role/team-%05d/alice", n/2), "111122223333", "AROAEXAMPLEEXAMPLE01:alice", "ASIAEXAMPLE")
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Map(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParse10k is a full reload's CPU: parse and index 10k rows.
func BenchmarkParse10k(b *testing.B) {
	data := benchMapping(5_000)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
