package envoy_test

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/kube-iam-authz/kube-iam-authz/envoy"
)

// localPortsFor covers every listener, cluster and file of b with made-up loopback
// addresses (nothing binds them here) and paths under dir.
func localPortsFor(t *testing.T, b *bootstrapv3.Bootstrap, s envoy.Secrets, dir string) envoy.LocalPorts {
	t.Helper()
	inv, err := envoy.InventorizeAll(b, s)
	if err != nil {
		t.Fatal(err)
	}
	p := envoy.LocalPorts{
		AdminAddr:  "127.0.0.1:20000",
		AuthzAddr:  "127.0.0.1:20001",
		Listeners:  map[string]string{},
		APIServers: map[string]string{},
		Files:      map[string]string{},
	}
	for i, name := range append(inv.Listeners, inv.StatsListeners...) {
		p.Listeners[name] = fmt.Sprintf("127.0.0.1:%d", 20100+i)
	}
	for i, name := range inv.APIServers {
		p.APIServers[name] = fmt.Sprintf("127.0.0.1:%d", 20200+i)
	}
	for _, f := range inv.Files {
		p.Files[f] = path.Join(dir, path.Base(f))
	}
	return p
}

// withoutLocalities blanks everything RenderLocal may change, so that what remains
// must be identical between a reviewed config and its rendering.
func withoutLocalities[T proto.Message](t *testing.T, b T) T {
	t.Helper()
	b = proto.Clone(b).(T)
	steps := []error{
		envoy.Edit(b, func(pc *corev3.PathConfigSource) error {
			pc.Path = "-"
			return nil
		}),
		envoy.Edit(b, func(w *corev3.WatchedDirectory) error {
			w.Path = "-"
			return nil
		}),
		envoy.Edit(b, func(sa *corev3.SocketAddress) error {
			sa.Address, sa.PortSpecifier = "", nil
			return nil
		}),
		envoy.Edit(b, func(ds *corev3.DataSource) error {
			if ds.GetFilename() != "" {
				ds.Specifier = &corev3.DataSource_Filename{Filename: "-"}
			}
			return nil
		}),
		envoy.Edit(b, func(c *clusterv3.Cluster) error {
			c.ClusterDiscoveryType, c.LoadAssignment = nil, nil
			return nil
		}),
	}
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRenderLocalChangesOnlyAddressesAndFiles(t *testing.T) {
	for _, file := range reviewedConfigs(t) {
		t.Run(file, func(t *testing.T) {
			reviewed, secrets, err := envoy.LoadWithSecrets(file)
			if err != nil {
				t.Fatal(err)
			}
			before := proto.Clone(reviewed)
			p := localPortsFor(t, reviewed, secrets, "/tmp/kia-test")

			out, err := envoy.RenderLocal(reviewed, secrets, p)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(before, reviewed) {
				t.Fatal("RenderLocal modified its input")
			}

			// Each SDS file is rendered to its local path, with only paths changed.
			if len(out.SDS) != len(secrets) || len(secrets) == 0 {
				t.Fatalf("rendered %d SDS files, the config reads %d", len(out.SDS), len(secrets))
			}
			for prod, want := range secrets {
				data, ok := out.SDS[p.Files[prod]]
				if !ok {
					t.Fatalf("SDS file %s not rendered at %s", prod, p.Files[prod])
				}
				got, err := envoy.ParseSecrets(data)
				if err != nil {
					t.Fatalf("rendered SDS file %s: %v", prod, err)
				}
				if len(got) != len(want) {
					t.Fatalf("%s: %d secrets rendered, want %d", prod, len(got), len(want))
				}
				for i := range want {
					if diff := cmpDiff(withoutLocalities(t, want[i]), withoutLocalities(t, got[i])); diff != "" {
						t.Errorf("%s: rendering changed more than paths (-reviewed +rendered):\n%s", prod, diff)
					}
					files, _ := envoy.Find[*corev3.DataSource](got[i])
					dirs, _ := envoy.Find[*corev3.WatchedDirectory](got[i])
					for _, f := range files {
						if !strings.HasPrefix(f.GetFilename(), "/tmp/kia-test/") {
							t.Errorf("%s: file %s was not rewritten", prod, f.GetFilename())
						}
					}
					for _, d := range dirs {
						if d.GetPath() != "/tmp/kia-test" {
							t.Errorf("%s: watched directory %s was not rewritten", prod, d.GetPath())
						}
					}
				}
			}
			rendered, err := envoy.Parse(out.Bootstrap)
			if err != nil {
				t.Fatalf("rendered config does not parse: %v", err)
			}
			if err := envoy.CheckPolicy(rendered); err != nil {
				t.Fatalf("rendered config lost policy: %v", err)
			}
			if diff := cmpDiff(withoutLocalities(t, reviewed), withoutLocalities(t, rendered)); diff != "" {
				t.Fatalf("rendering changed more than addresses and files (-reviewed +rendered):\n%s", diff)
			}

			// Every address and file is now local.
			addrs, err := envoy.Find[*corev3.SocketAddress](rendered)
			if err != nil {
				t.Fatal(err)
			}
			for _, sa := range addrs {
				if sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() < 20000 {
					t.Errorf("address %s:%d is not a rendered local address", sa.GetAddress(), sa.GetPortValue())
				}
			}
			inv, err := envoy.Inventorize(rendered)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range inv.Files {
				if !strings.HasPrefix(f, "/tmp/kia-test/") {
					t.Errorf("file %s was not rewritten", f)
				}
			}
			for _, d := range inv.Dirs {
				if d != "/tmp/kia-test" {
					t.Errorf("watched directory %s was not rewritten", d)
				}
			}
			if got, want := rendered.GetAdmin().GetAddress().GetSocketAddress().GetPortValue(), uint32(20000); got != want {
				t.Errorf("admin port = %d, want %d", got, want)
			}
		})
	}
}

// TestRenderLocalStatsListener: the stats listener's upstream follows the admin
// address, and a caller that gives the stats listener no address gets a config
// without it (and still with every other listener).
func TestRenderLocalStatsListener(t *testing.T) {
	reviewed, secrets, err := envoy.LoadWithSecrets("sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := envoy.Inventorize(reviewed)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"stats"}; strings.Join(inv.StatsListeners, ",") != strings.Join(want, ",") {
		t.Fatalf("StatsListeners = %v, want %v", inv.StatsListeners, want)
	}
	if want := []string{"envoy_admin"}; strings.Join(inv.AdminClusters, ",") != strings.Join(want, ",") {
		t.Fatalf("AdminClusters = %v, want %v", inv.AdminClusters, want)
	}
	for _, name := range inv.Listeners {
		if name == "stats" {
			t.Errorf("Listeners also lists the stats listener")
		}
	}
	tests := map[string]struct {
		withStats     bool
		wantListeners []string
	}{
		"stats listener asked for": {withStats: true, wantListeners: []string{"kube-api", "stats"}},
		"stats listener left out":  {withStats: false, wantListeners: []string{"kube-api"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := localPortsFor(t, reviewed, secrets, "/tmp/kia-test")
			if !tc.withStats {
				delete(p.Listeners, "stats")
			}
			out, err := envoy.RenderLocal(reviewed, secrets, p)
			if err != nil {
				t.Fatal(err)
			}
			rendered, err := envoy.Parse(out.Bootstrap)
			if err != nil {
				t.Fatal(err)
			}
			// The SDS files are rendered either way: the stats listener reads none.
			if len(out.SDS) != len(secrets) {
				t.Errorf("%d SDS files rendered, want %d", len(out.SDS), len(secrets))
			}
			var got []string
			for _, l := range rendered.GetStaticResources().GetListeners() {
				got = append(got, l.GetName())
			}
			if strings.Join(got, ",") != strings.Join(tc.wantListeners, ",") {
				t.Errorf("listeners %v, want %v", got, tc.wantListeners)
			}
			for _, cl := range rendered.GetStaticResources().GetClusters() {
				if cl.GetName() != "envoy_admin" {
					continue
				}
				sa := cl.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
				if got := fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()); got != p.AdminAddr {
					t.Errorf("envoy_admin endpoint %s, want the admin address %s", got, p.AdminAddr)
				}
			}
			if err := envoy.CheckPolicy(rendered); err != nil {
				t.Errorf("rendered config fails the policy: %v", err)
			}
		})
	}
}

// cmpDiff compares two configs; protocmp lets go-cmp understand messages and Any.
func cmpDiff(a, b proto.Message) string {
	return cmp.Diff(a, b, protocmp.Transform())
}

func TestRenderLocalErrors(t *testing.T) {
	reviewed, secrets, err := envoy.LoadWithSecrets("sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	good := func() envoy.LocalPorts { return localPortsFor(t, reviewed, secrets, "/tmp/kia-test") }
	tests := map[string]struct {
		ports     func() envoy.LocalPorts
		wantInErr []string
	}{
		"listener not covered": {
			ports: func() envoy.LocalPorts {
				p := good()
				delete(p.Listeners, "kube-api")
				return p
			},
			wantInErr: []string{`listener "kube-api" has no local address`},
		},
		"unknown listener": {
			ports: func() envoy.LocalPorts {
				p := good()
				p.Listeners["kube-apj"] = "127.0.0.1:1"
				return p
			},
			wantInErr: []string{`Listeners["kube-apj"]: no such listener`},
		},
		"api server not covered, file not covered": {
			ports: func() envoy.LocalPorts {
				p := good()
				p.APIServers = nil
				delete(p.Files, "/etc/kube-iam-authz/tls/tls.key")
				return p
			},
			wantInErr: []string{`cluster "apiserver" has no local address`, `file "/etc/kube-iam-authz/tls/tls.key" has no local path`},
		},
		"authz cluster given as api server": {
			ports: func() envoy.LocalPorts {
				p := good()
				p.APIServers["authz"] = "127.0.0.1:5"
				return p
			},
			wantInErr: []string{`APIServers["authz"]: no such cluster (or it is the authz cluster)`},
		},
		"unknown file": {
			ports: func() envoy.LocalPorts {
				p := good()
				p.Files["/etc/other"] = "/tmp/other"
				return p
			},
			wantInErr: []string{`Files["/etc/other"]: the config reads no such file`},
		},
		"SDS file not covered": {
			ports: func() envoy.LocalPorts {
				p := good()
				delete(p.Files, "/etc/envoy/listener-cert.yaml")
				return p
			},
			wantInErr: []string{`file "/etc/envoy/listener-cert.yaml" has no local path`},
		},
		"watched directory ambiguous": {
			ports: func() envoy.LocalPorts {
				p := good()
				p.Files["/etc/kube-iam-authz/tls/tls.key"] = "/tmp/elsewhere/tls.key"
				return p
			},
			wantInErr: []string{`watched directory "/etc/kube-iam-authz/tls" has no local directory (its files map into 2; set LocalPorts.Dirs)`},
		},
		"unknown watched directory": {
			ports: func() envoy.LocalPorts {
				p := good()
				p.Dirs = map[string]string{"/etc/nowhere": "/tmp/x"}
				return p
			},
			wantInErr: []string{`Dirs["/etc/nowhere"]: the config watches no such directory`},
		},
		"non-loopback and malformed addresses": {
			ports: func() envoy.LocalPorts {
				p := good()
				p.AdminAddr = "0.0.0.0:9901"
				p.AuthzAddr = "localhost:9001"
				p.Listeners["kube-api"] = "127.0.0.1"
				p.APIServers["apiserver"] = "127.0.0.1:0"
				return p
			},
			wantInErr: []string{
				`AdminAddr: "0.0.0.0" is not a loopback IP`,
				`AuthzAddr: "localhost" is not a loopback IP`,
				`Listeners["kube-api"]: "127.0.0.1" is not host:port`,
				`APIServers["apiserver"]: "127.0.0.1:0" has no usable port`,
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := envoy.RenderLocal(reviewed, secrets, tc.ports())
			if !errors.Is(err, envoy.ErrRender) {
				t.Fatalf("err = %v, want ErrRender", err)
			}
			if out != nil {
				t.Fatal("output returned with an error")
			}
			for _, want := range tc.wantInErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v\nwant it to contain %s", err, want)
				}
			}
		})
	}
}
