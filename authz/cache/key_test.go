package cache

import (
	"strings"
	"testing"
)

func TestDigestSeparatesInputs(t *testing.T) {
	k, err := newKeyer()
	if err != nil {
		t.Fatal(err)
	}
	long := "k8s-aws-v1." + strings.Repeat("A", 2000) // spans several scratch chunks
	tests := map[string]struct {
		tokA, clusterA string
		tokB, clusterB string
		wantEqual      bool
	}{
		"same input":                             {tokA: "t", clusterA: "c", tokB: "t", clusterB: "c", wantEqual: true},
		"same long input":                        {tokA: long, clusterA: "c", tokB: long, clusterB: "c", wantEqual: true},
		"different cluster":                      {tokA: "t", clusterA: "prod", tokB: "t", clusterB: "dev"},
		"bytes moved between cluster and token":  {tokA: "bc", clusterA: "a", tokB: "c", clusterB: "ab"},
		"empty cluster vs cluster prefix":        {tokA: "abc", clusterA: "", tokB: "bc", clusterB: "a"},
		"long tokens differing in the last byte": {tokA: long, clusterA: "c", tokB: long[:len(long)-1] + "B", clusterB: "c"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a, b := k.digest(tc.tokA, tc.clusterA), k.digest(tc.tokB, tc.clusterB)
			if got := a == b; got != tc.wantEqual {
				t.Errorf("digests equal = %v, want %v", got, tc.wantEqual)
			}
		})
	}
}

func TestDigestIsKeyedPerCache(t *testing.T) {
	k1, err := newKeyer()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := newKeyer()
	if err != nil {
		t.Fatal(err)
	}
	if k1.digest("k8s-aws-v1.x", "c") == k2.digest("k8s-aws-v1.x", "c") {
		t.Error("two keyers produced the same digest: the HMAC key is not random")
	}
}

func TestDigestAllocationFree(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race; allocation counts are meaningless")
	}
	k, err := newKeyer()
	if err != nil {
		t.Fatal(err)
	}
	tok := "k8s-aws-v1." + strings.Repeat("x", 1500)
	k.digest(tok, "c") // warm the pool
	if n := testing.AllocsPerRun(100, func() { k.digest(tok, "c") }); n > 0 {
		t.Errorf("digest allocates %v times per call, want 0 (it is on the hit path)", n)
	}
}
