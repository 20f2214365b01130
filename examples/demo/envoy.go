package main

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kube-iam-authz/kube-iam-authz/envoy"
)

// renderEnvoy renders the reviewed envoy/sidecar.yaml for loopback with
// envoy.RenderLocal, which changes only addresses, ports and file
// paths: the policy kubectl meets in the demo is the production one.
func renderEnvoy(repoDir string, a addrs, l layout, pki listenerPKI) error {
	b, secrets, err := envoy.LoadWithSecrets(filepath.Join(repoDir, "envoy", "sidecar.yaml"))
	if err != nil {
		return err
	}
	inv, err := envoy.InventorizeAll(b, secrets)
	if err != nil {
		return err
	}
	if len(inv.Listeners) != 1 || len(inv.APIServers) != 1 {
		return fmt.Errorf("envoy/sidecar.yaml: want one listener and one API server cluster, have listeners %v and clusters %v", inv.Listeners, inv.APIServers)
	}
	p := envoy.LocalPorts{
		AdminAddr:  a.EnvoyAdmin,
		AuthzAddr:  a.AuthzGRPC,
		Listeners:  map[string]string{inv.Listeners[0]: a.EnvoyListen},
		APIServers: map[string]string{inv.APIServers[0]: a.APIServer},
		Files:      map[string]string{},
	}
	// The sidecar reads its SDS files (rendered next to the config), the
	// listener's certificate and key (a TLS Secret in the pod) and the API
	// server's CA (the service account's ca.crt).
	for _, f := range inv.Files {
		switch {
		case secrets[f] != nil:
			p.Files[f] = filepath.Join(filepath.Dir(l.EnvoyConfig), "sds-"+path.Base(f))
		case strings.HasSuffix(f, ".key"):
			p.Files[f] = pki.KeyFile
		case path.Base(f) == "tls.crt":
			p.Files[f] = pki.CertFile
		case path.Base(f) == "ca.crt":
			p.Files[f] = filepath.Join(l.APIServerCert, "ca.crt")
		default:
			return fmt.Errorf("envoy/sidecar.yaml reads %s, which the demo does not know how to provide", f)
		}
	}
	r, err := envoy.RenderLocal(b, secrets, p)
	if err != nil {
		return err
	}
	if err := r.WriteSDS(); err != nil {
		return err
	}
	return os.WriteFile(l.EnvoyConfig, r.Bootstrap, 0o600)
}
