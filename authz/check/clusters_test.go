package check

import (
	"context"
	"errors"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
)

func TestClustersFromContextExtensions(t *testing.T) {
	prodMapper := &fakeMapper{users: map[string]kubeuser.User{alice.CanonicalARN: {Username: "prod:alice"}}}
	stagingMapper := &fakeMapper{users: map[string]kubeuser.User{alice.CanonicalARN: {Username: "staging:alice", Groups: []string{"staging"}}}}
	extra := []Cluster{
		{Name: "prod", ID: "prod-cluster", Mapper: prodMapper},
		{Name: "staging", ID: "staging-cluster", Mapper: stagingMapper},
	}
	aliceAs := func(user string, groups ...string) *authv3.CheckResponse {
		hs := []hdr{{"impersonate-user", user, setH}}
		return wantOK(append(hs, withAuth(aliceHeaders[1:], proxyAuth)...), groups)
	}
	tests := map[string]struct {
		ext           map[string]string
		want          *authv3.CheckResponse
		wantLabel     string
		wantClusterID string
	}{
		"no extensions: default":            {ext: nil, want: wantOK(withAuth(aliceHeaders, proxyAuth), aliceGroups), wantClusterID: "dev-cluster"},
		"unrelated extension: default":      {ext: map[string]string{"virtual_host": "k8s"}, want: wantOK(withAuth(aliceHeaders, proxyAuth), aliceGroups), wantClusterID: "dev-cluster"},
		"cluster_id selects id and mapping": {ext: map[string]string{"cluster_id": "prod-cluster"}, want: aliceAs("prod:alice"), wantClusterID: "prod-cluster"},
		"mapping selects mapping and id":    {ext: map[string]string{"mapping": "staging"}, want: aliceAs("staging:alice", "staging"), wantClusterID: "staging-cluster"},
		"both: id from one, mapping from other": {
			ext: map[string]string{"cluster_id": "prod-cluster", "mapping": "staging"}, want: aliceAs("staging:alice", "staging"), wantClusterID: "prod-cluster",
		},
		"default selectable by name":    {ext: map[string]string{"mapping": "default"}, want: wantOK(withAuth(aliceHeaders, proxyAuth), aliceGroups), wantClusterID: "dev-cluster"},
		"unknown cluster_id":            {ext: map[string]string{"cluster_id": "other"}, wantLabel: "unknown_cluster"},
		"empty cluster_id":              {ext: map[string]string{"cluster_id": ""}, wantLabel: "unknown_cluster"},
		"unknown mapping":               {ext: map[string]string{"mapping": "nope"}, wantLabel: "unknown_cluster"},
		"known id, unknown mapping":     {ext: map[string]string{"cluster_id": "prod-cluster", "mapping": "nope"}, wantLabel: "unknown_cluster"},
		"cluster name is not an id":     {ext: map[string]string{"cluster_id": "prod"}, wantLabel: "unknown_cluster"},
		"cluster id is not a name":      {ext: map[string]string{"mapping": "prod-cluster"}, wantLabel: "unknown_cluster"},
		"case matters in cluster names": {ext: map[string]string{"mapping": "Prod"}, wantLabel: "unknown_cluster"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{extra: extra})
			got, err := f.server.Check(context.Background(), request(bearer(tokAlice), tc.ext))
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantLabel != "" {
				assertResponse(t, got, wantDenied(t, tc.wantLabel))
				if f.verifier.calls != 0 {
					t.Errorf("verifier called %d times for a misrouted request", f.verifier.calls)
				}
				return
			}
			assertResponse(t, got, tc.want)
			if len(f.verifier.clusterIDs) != 1 || f.verifier.clusterIDs[0] != tc.wantClusterID {
				t.Errorf("verified against %v, want %q", f.verifier.clusterIDs, tc.wantClusterID)
			}
		})
	}
}

func TestNewClustersValidation(t *testing.T) {
	m := &fakeMapper{}
	tests := map[string]struct {
		clusters  []Cluster
		wantError bool
	}{
		"one":            {clusters: []Cluster{{Name: "a", ID: "x", Mapper: m}}},
		"two":            {clusters: []Cluster{{Name: "a", ID: "x", Mapper: m}, {Name: "b", ID: "y", Mapper: m}}},
		"none":           {wantError: true},
		"empty name":     {clusters: []Cluster{{ID: "x", Mapper: m}}, wantError: true},
		"empty id":       {clusters: []Cluster{{Name: "a", Mapper: m}}, wantError: true},
		"no mapper":      {clusters: []Cluster{{Name: "a", ID: "x"}}, wantError: true},
		"duplicate name": {clusters: []Cluster{{Name: "a", ID: "x", Mapper: m}, {Name: "a", ID: "y", Mapper: m}}, wantError: true},
		"duplicate id":   {clusters: []Cluster{{Name: "a", ID: "x", Mapper: m}, {Name: "b", ID: "x", Mapper: m}}, wantError: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := newClusters(tc.clusters)
			if (err != nil) != tc.wantError {
				t.Fatalf("newClusters error = %v, wantError %v", err, tc.wantError)
			}
		})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(Options{})
	if err == nil {
		t.Fatal("New(Options{}) succeeded")
	}
	for _, want := range []string{"Verifier", "cluster", "Logger", "Registerer"} {
		if !containsFold(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 4 {
		t.Errorf("want 4 joined errors, got %v", err)
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func TestPerClusterUpstreamToken(t *testing.T) {
	prodMapper := &fakeMapper{users: map[string]kubeuser.User{bob.CanonicalARN: {Username: "bob"}}}
	f := newFixture(t, fixtureOptions{extra: []Cluster{{Name: "prod", ID: "prod-cluster", Mapper: prodMapper, Upstream: &fakeBearer{tok: "prod-sa-token"}}}})
	tests := map[string]struct {
		ext      map[string]string
		wantAuth string
	}{
		"default cluster uses the server's token": {ext: nil, wantAuth: "Bearer " + proxySA},
		"prod cluster uses its own token":         {ext: map[string]string{"cluster_id": "prod-cluster"}, wantAuth: "Bearer prod-sa-token"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := f.server.Check(context.Background(), request(bearer(tokBob), tc.ext))
			if err != nil {
				t.Fatal(err)
			}
			assertResponse(t, got, wantOK(withAuth(bobHeaders, hdr{"authorization", tc.wantAuth, setH}), nil))
		})
	}
}
