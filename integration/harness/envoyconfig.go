package harness

import (
	"path"
	"path/filepath"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/kube-iam-authz/kube-iam-authz/envoy"
)

// RenderOptions says how to run a reviewed Envoy config on loopback.
type RenderOptions struct {
	// AuthzAddr is the ext_authz gRPC server.
	AuthzAddr string
	// APIServers maps cluster names to local upstream addresses. Clusters left out get
	// a free port nobody listens on (requests to them fail with 503).
	APIServers map[string]string
	// CA signs ServerCert and is used as every CA file the config reads.
	CA *CA
	// ServerCert is served by the listeners (files named *.key get its key, the
	// listener certificate file tls.crt gets its certificate).
	ServerCert *Cert
	// Files maps file paths the config reads to local files, before the defaults
	// above apply (e.g. each API server cluster's trusted CA file to the CA of the
	// stand-in it reaches). SDS files are rendered into a temporary directory.
	Files map[string]string
	// Dirs maps watched directories to local ones; by default each follows the
	// files it is watched for (envoy.LocalPorts.Dirs).
	Dirs map[string]string
	// Stats also runs the config's stats listeners (Envoy's /stats/prometheus, see
	// envoy.RuleStatsListener) on free ports, listed with the other listeners
	// in the returned LocalPorts. Without it they are left out of the rendering, so
	// every returned listener is one that fronts an API server.
	Stats bool
	// Edit, if set, changes the loaded config before rendering (e.g. a shorter
	// max_stream_duration for a test). The reviewed policy still applies unless the
	// test means to break it.
	Edit func(*bootstrapv3.Bootstrap) error
}

// RenderEnvoy loads a reviewed config and its SDS files, gives every listener a free
// loopback port, and renders it with envoy.RenderLocal. It writes the rendered
// SDS files (Envoy reads them at start) and returns the config for StartEnvoy and the
// ports chosen.
func RenderEnvoy(t testing.TB, configPath string, o RenderOptions) ([]byte, envoy.LocalPorts) {
	t.Helper()
	b, secrets, err := envoy.LoadWithSecrets(configPath)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if o.Edit != nil {
		if err := o.Edit(b); err != nil {
			t.Fatalf("harness: edit config: %v", err)
		}
	}
	inv, err := envoy.InventorizeAll(b, secrets)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	p := envoy.LocalPorts{
		AdminAddr:  FreeAddr(t),
		AuthzAddr:  o.AuthzAddr,
		Listeners:  map[string]string{},
		APIServers: map[string]string{},
		Files:      map[string]string{},
		Dirs:       o.Dirs,
	}
	sdsDir := t.TempDir()
	for sds := range secrets {
		p.Files[sds] = filepath.Join(sdsDir, path.Base(sds))
	}
	listeners := inv.Listeners
	if o.Stats {
		listeners = append(listeners, inv.StatsListeners...)
	}
	for _, name := range listeners {
		p.Listeners[name] = FreeAddr(t)
	}
	for _, name := range inv.APIServers {
		addr, ok := o.APIServers[name]
		if !ok {
			addr = FreeAddr(t)
		}
		p.APIServers[name] = addr
	}
	for _, f := range inv.Files {
		if _, ok := secrets[f]; ok {
			continue
		}
		if local, ok := o.Files[f]; ok {
			p.Files[f] = local
			continue
		}
		switch {
		case strings.HasSuffix(f, ".key"):
			p.Files[f] = o.ServerCert.KeyFile
		case path.Base(f) == "tls.crt":
			p.Files[f] = o.ServerCert.CertFile
		default:
			p.Files[f] = o.CA.CertFile
		}
	}
	r, err := envoy.RenderLocal(b, secrets, p)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := r.WriteSDS(); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return r.Bootstrap, p
}

// UpstreamTLS is how a reviewed config verifies one API server cluster.
type UpstreamTLS struct {
	// SNI is the server name Envoy sends; the reviewed configs pin the same name
	// with a SAN matcher, so a stand-in's certificate must carry it.
	SNI string
	// CAFile is the trusted CA file path the config reads.
	CAFile string
}

// UpstreamTLSOf returns the upstream TLS settings of every cluster of the config at
// configPath that has an UpstreamTlsContext, by cluster name.
func UpstreamTLSOf(t testing.TB, configPath string) map[string]UpstreamTLS {
	t.Helper()
	b, secrets, err := envoy.LoadWithSecrets(configPath)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	// The CAs come through SDS: the validation context secret of each name.
	caOf := map[string]string{}
	for _, list := range secrets {
		for _, s := range list {
			if f := s.GetValidationContext().GetTrustedCa().GetFilename(); f != "" {
				caOf[s.GetName()] = f
			}
		}
	}
	out := map[string]UpstreamTLS{}
	for _, cl := range b.GetStaticResources().GetClusters() {
		ts := cl.GetTransportSocket().GetTypedConfig()
		if ts == nil {
			continue
		}
		var up tlsv3.UpstreamTlsContext
		if err := ts.UnmarshalTo(&up); err != nil {
			continue
		}
		common := up.GetCommonTlsContext()
		ca := common.GetValidationContext().GetTrustedCa().GetFilename()
		if sds := common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig(); sds != nil {
			ca = caOf[sds.GetName()]
		}
		out[cl.GetName()] = UpstreamTLS{SNI: up.GetSni(), CAFile: ca}
	}
	return out
}

// StatsListenersOf returns the stats listeners (Envoy's /stats/prometheus) of the
// config at configPath.
func StatsListenersOf(t testing.TB, configPath string) []string {
	t.Helper()
	b, err := envoy.Load(configPath)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	inv, err := envoy.Inventorize(b)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return inv.StatsListeners
}
