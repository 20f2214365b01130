package envoy_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kube-iam-authz/kube-iam-authz/envoy"
)

// reviewedConfigs are every Envoy config shipped in this directory. A new file is
// picked up by every test automatically.
func reviewedConfigs(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 2 {
		t.Fatalf("want at least sidecar.yaml and multi-cluster.yaml, found %v", paths)
	}
	return paths
}

func TestLoadReviewedConfigs(t *testing.T) {
	for _, path := range reviewedConfigs(t) {
		t.Run(path, func(t *testing.T) {
			b, err := envoy.Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(b.GetStaticResources().GetListeners()) == 0 {
				t.Fatal("no listeners decoded")
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := envoy.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want os.ErrNotExist", err)
	}
}

func TestParseRejects(t *testing.T) {
	tests := map[string]struct {
		yaml    string
		wantErr string
	}{
		"unknown field": {
			yaml:    "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}, bogus: 1}",
			wantErr: "bogus",
		},
		"duplicate key": {
			yaml:    "admin: {}\nadmin: {}\n",
			wantErr: "already set",
		},
		"not yaml": {
			yaml:    "admin: [",
			wantErr: "yaml",
		},
		"unregistered typed_config": {
			yaml: `static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 1}}
    filter_chains:
    - filters:
      - name: x
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy}
`,
			wantErr: "redis_proxy",
		},
		"field constraint at top level": {
			yaml:    "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 70000}}}",
			wantErr: "PortValue",
		},
		// ValidateAll does not look inside google.protobuf.Any; Parse must.
		"field constraint inside typed_config": {
			yaml: `static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 1}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ""
          route_config: {}
`,
			wantErr: "StatPrefix",
		},
		"too large": {
			yaml:    "# " + strings.Repeat("x", 1<<20),
			wantErr: "larger than",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := envoy.Parse([]byte(tc.yaml))
			if !errors.Is(err, envoy.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseResolvesAnchors(t *testing.T) {
	// multi-cluster.yaml shares blocks between listeners through YAML anchors; both
	// listeners must decode with the shared ext_authz filter.
	b, err := envoy.Load("multi-cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := envoy.Inventorize(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(inv.Listeners, ","), "kube-api-a,kube-api-b"; got != want {
		t.Fatalf("listeners = %s, want %s", got, want)
	}
	if got, want := strings.Join(inv.AuthzClusters, ","), "authz"; got != want {
		t.Fatalf("authz clusters = %s, want %s (ext_authz decoded through the anchor on both listeners?)", got, want)
	}
}
