package main

import (
	"fmt"
	"os"
	"path/filepath"

	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"
)

// layout names every file the demo writes under the state directory.
type layout struct {
	Dir           string
	Logs          string
	STSCA         string // CA the STS stand-in generated, trusted by serve
	APIServerCert string // the cluster PKI: ca.crt, apiserver.crt/.key, sa.key, the bootstrap admin's
	Etcd          string // etcd's data directory, fresh every run
	AuditLog      string // kube-apiserver's audit log
	AdminKube     string // kubeconfig of the bootstrap admin, straight to kube-apiserver
	ProxyKube     string // serve's --kubeconfig: the aws-auth watch and SubjectAccessReviews, as the proxy
	ProxyToken    string // the proxy's own bearer token: a TokenRequest token of its service account
	PKI           string // CA and certificate of Envoy's listener
	EnvoyConfig   string // envoy/sidecar.yaml rendered for loopback
	Kubeconfig    string
	Home          string // HOME for kubectl and the exec plugin
	State         string // addresses and pids, for tests and scripts
}

func newLayout(dir string) layout {
	return layout{
		Dir:           dir,
		Logs:          filepath.Join(dir, "logs"),
		STSCA:         filepath.Join(dir, "sts-ca.crt"),
		APIServerCert: filepath.Join(dir, "apiserver"),
		Etcd:          filepath.Join(dir, "etcd"),
		AuditLog:      filepath.Join(dir, "logs", "kube-apiserver-audit.log"),
		AdminKube:     filepath.Join(dir, "admin.kubeconfig"),
		ProxyKube:     filepath.Join(dir, "proxy.kubeconfig"),
		ProxyToken:    filepath.Join(dir, "proxy-token"),
		PKI:           filepath.Join(dir, "pki"),
		EnvoyConfig:   filepath.Join(dir, "envoy.json"),
		Kubeconfig:    filepath.Join(dir, "kubeconfig"),
		Home:          filepath.Join(dir, "home"),
		State:         filepath.Join(dir, "state.json"),
	}
}

// prepare empties the state directory and marks it as the demo's.
func (l layout) prepare() error {
	// Only ever remove a directory this demo made (or an empty one): the
	// marker guards against --state-dir pointing somewhere precious.
	if entries, err := os.ReadDir(l.Dir); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(l.Dir, ".kube-iam-authz-demo")); err != nil {
			return fmt.Errorf("%s exists and was not made by the demo; remove it or pass another --state-dir", l.Dir)
		}
		if err := os.RemoveAll(l.Dir); err != nil {
			return err
		}
	}
	for _, d := range []string{l.Dir, l.Logs, l.APIServerCert, l.PKI, l.Home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(l.Dir, ".kube-iam-authz-demo"), nil, 0o600); err != nil {
		return err
	}

	// The mapping is applied to the cluster (bootstrap.go), and the proxy's
	// own credential comes from the TokenRequest API, once kube-apiserver is up.
	return nil
}

// writeKubeconfig writes the demo's kubeconfig (see buildKubeconfig).
func (l layout) writeKubeconfig(serverURL, caFile, tokenCommand string, ids []caller) error {
	out, err := buildKubeconfig(serverURL, caFile, tokenCommand, l.Home, ids)
	if err != nil {
		return err
	}
	return os.WriteFile(l.Kubeconfig, out, 0o600)
}

// buildKubeconfig makes one cluster (Envoy's listener) and one user and
// context per caller, the first being the current context. Each user is an
// exec plugin running `kube-iam-authz token` with that caller's static fake
// keys; the environment is pinned so that the reader's own AWS setup
// (profiles, SSO, IMDS) can neither leak in nor be needed. home, if set,
// isolates HOME too. docker-compose's kubeconfig is built here as well.
func buildKubeconfig(serverURL, caFile, tokenCommand, home string, ids []caller) ([]byte, error) {
	cfg := clientcmdv1.Config{
		Kind:       "Config",
		APIVersion: "v1",
		Clusters: []clientcmdv1.NamedCluster{{
			Name:    "kube-iam-authz-demo",
			Cluster: clientcmdv1.Cluster{Server: serverURL, CertificateAuthority: caFile},
		}},
		CurrentContext: ids[0].Context,
	}
	for _, id := range ids {
		c := id.Principal.Credentials
		env := []clientcmdv1.ExecEnvVar{
			{Name: "AWS_ACCESS_KEY_ID", Value: c.AccessKeyID},
			{Name: "AWS_SECRET_ACCESS_KEY", Value: c.SecretAccessKey},
			{Name: "AWS_SESSION_TOKEN", Value: c.SessionToken},
			{Name: "AWS_PROFILE", Value: ""},
			{Name: "AWS_CONFIG_FILE", Value: os.DevNull},
			{Name: "AWS_SHARED_CREDENTIALS_FILE", Value: os.DevNull},
			{Name: "AWS_EC2_METADATA_DISABLED", Value: "true"},
		}
		if home != "" {
			env = append(env, clientcmdv1.ExecEnvVar{Name: "HOME", Value: home})
		}
		cfg.AuthInfos = append(cfg.AuthInfos, clientcmdv1.NamedAuthInfo{
			Name: id.Context,
			AuthInfo: clientcmdv1.AuthInfo{Exec: &clientcmdv1.ExecConfig{
				APIVersion:      "client.authentication.k8s.io/v1",
				Command:         tokenCommand,
				Args:            []string{"token", "--cluster-id", clusterID, "--region", "us-east-1"},
				Env:             env,
				InteractiveMode: clientcmdv1.NeverExecInteractiveMode,
			}},
		})
		cfg.Contexts = append(cfg.Contexts, clientcmdv1.NamedContext{
			Name:    id.Context,
			Context: clientcmdv1.Context{Cluster: "kube-iam-authz-demo", AuthInfo: id.Context},
		})
	}
	return yaml.Marshal(cfg)
}
