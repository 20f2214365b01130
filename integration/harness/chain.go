package harness

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"

	"github.com/kube-iam-authz/kube-iam-authz/authz/token"
	"github.com/kube-iam-authz/kube-iam-authz/integration/stsfake"
)

// File names inside the chain's projected volumes.
const (
	// MappingFileName is the aws-auth file in each cluster's mapping volume.
	MappingFileName = "aws-auth.yaml"
	// ProxyTokenFileName is the proxy's token in its projected token volume.
	ProxyTokenFileName = "token"
)

// serveDefaultCluster is the name serve gives the cluster of its flags.
const serveDefaultCluster = "default"

// ChainCluster is one Kubernetes cluster behind the chain's Envoy.
type ChainCluster struct {
	// Name is the cluster's name in serve (what a route's context_extensions
	// `mapping` selects; "default" is the cluster of serve's flags) and in the
	// kubeconfig.
	Name string
	// ID is the cluster id tokens are signed for (x-k8s-aws-id).
	ID string
	// Listener is the Envoy listener that reaches the cluster.
	Listener string
	// APIServer is the Envoy cluster of its API server.
	APIServer string
	// Mapping is its aws-auth file (DefaultMapping when nil).
	Mapping []byte
}

// ChainOptions configure StartChain. The zero value is envoy/sidecar.yaml in front
// of one cluster "default" with id DefaultClusterID.
type ChainOptions struct {
	// EnvoyConfig is the reviewed config, relative to the repository root
	// (default envoy/sidecar.yaml).
	EnvoyConfig string
	// Clusters, in kubeconfig order; the first is what Kubectl talks to.
	Clusters []ChainCluster
	// Identities the STS stand-in knows (default DefaultIdentities).
	Identities []Identity
	// ServeArgs are extra `kube-iam-authz serve` flags.
	ServeArgs []string
	// ImpersonationMode of the API server stand-ins: "classic" (default, what EKS
	// runs) or "constrained" (the ConstrainedImpersonation gate, on by default since
	// Kubernetes 1.36).
	ImpersonationMode string
	// KubeAPIServer, when set, is the API server of the one cluster instead of a
	// stand-in: the real kube-apiserver (usually SharedKubeAPIServer's), whose RBAC
	// decides and whose audit log records. serve sends a TokenRequest token of the
	// proxy's service account of this chain's own (Chain.KubeProxyToken).
	// ImpersonationMode does not apply: the real server runs its defaults.
	KubeAPIServer *KubeAPIServer
	// MappingConfigMap (NAMESPACE/NAME, with KubeAPIServer) makes serve read the
	// mapping from that ConfigMap of the real kube-apiserver (--mapping-configmap)
	// as the proxy's service account, with the chain's TokenRequest token (the one
	// it also sends upstream, so rotation is exercised too), instead of a file.
	// The test creates and edits the ConfigMap; the cluster's Mapping is unused.
	MappingConfigMap string
}

// DefaultClusterID is the cluster id of the default chain.
const DefaultClusterID = "e2e-cluster"

// SidecarClusters is the one cluster of envoy/sidecar.yaml.
func SidecarClusters() []ChainCluster {
	return []ChainCluster{{Name: serveDefaultCluster, ID: DefaultClusterID, Listener: "kube-api", APIServer: "apiserver"}}
}

// MultiClusters are the two clusters of envoy/multi-cluster.yaml (the names and ids
// its routes' context_extensions carry).
func MultiClusters() []ChainCluster {
	return []ChainCluster{
		{Name: "prod-a", ID: "prod-a", Listener: "kube-api-a", APIServer: "apiserver-a"},
		{Name: "prod-b", ID: "prod-b", Listener: "kube-api-b", APIServer: "apiserver-b"},
	}
}

// RunningCluster is a ChainCluster with its processes and files.
type RunningCluster struct {
	ChainCluster
	// APIServer is the stand-in behind the cluster's Envoy listener (nil when
	// Kube is set).
	APIServer *APIServer
	// Kube is the real kube-apiserver behind the listener (ChainOptions.KubeAPIServer).
	Kube *KubeAPIServer
	// MappingVolume holds MappingFileName, laid out like a ConfigMap volume.
	MappingVolume *ProjectedDir
	// Addr is the Envoy listener's address (what the kubeconfig's server URL names).
	Addr string
}

// Chain is the whole path on loopback: kubectl (exec plugin) → Envoy (a reviewed
// config) → kube-iam-authz serve → sts-fake, and Envoy → apiserver-fake, with a
// kubeconfig holding one user per identity, cluster and token producer.
type Chain struct {
	STS   *STSFake
	Serve *Serve
	Envoy *Envoy
	// Clusters in ChainOptions order.
	Clusters []*RunningCluster
	// EnvoyStats maps each stats listener of the Envoy config (Envoy's
	// /stats/prometheus, envoy.RuleStatsListener) to its local address.
	EnvoyStats map[string]string
	// ProxyTokenVolume holds ProxyTokenFileName, the proxy's credential, read by
	// serve (--upstream-token-file) and every API server stand-in.
	ProxyTokenVolume *ProjectedDir
	// KubeProxyToken is the proxy's TokenRequest token on the real kube-apiserver
	// (nil with stand-ins); its Volume is ProxyTokenVolume.
	KubeProxyToken *ProxyToken
	// Kubeconfig is the kubeconfig file Kubectl uses.
	Kubeconfig string
	// CA signed Envoy's listener certificate (the kubeconfig trusts it).
	CA *CA
	// Identities the STS stand-in knows.
	Identities []Identity

	// Canary holds every secret of the chain (the identities' secret keys and
	// session tokens, every token an exec plugin issued, every token a test passed
	// to KubectlWithToken). When the test ends, every process log, serve's /metrics
	// and every kubectl output are scanned for them; a test can Record more text
	// (response bodies) or Add more secrets.
	Canary *Canary

	kubectl string
	home    string
	env     []string
	credLog string
}

// StartChain starts every process of the chain, waits until each is ready, and
// writes the kubeconfig. Everything stops on t.Cleanup. It skips the test if
// kubectl is missing and fails it if any other peer (Envoy, the built binaries)
// is.
func StartChain(t testing.TB, o ChainOptions) *Chain {
	t.Helper()
	if o.EnvoyConfig == "" {
		o.EnvoyConfig = "envoy/sidecar.yaml"
	}
	if len(o.Clusters) == 0 {
		o.Clusters = SidecarClusters()
	}
	if len(o.Identities) == 0 {
		o.Identities = DefaultIdentities()
	}
	c := &Chain{kubectl: KubectlPath(t), Identities: o.Identities}
	EnvoyPath(t) // fail before starting anything when Envoy is missing
	configPath := RepoFile(t, o.EnvoyConfig)
	upstreamTLS := UpstreamTLSOf(t, configPath)

	var principals []stsfake.Principal
	for _, id := range o.Identities {
		principals = append(principals, id.Principal)
	}
	c.STS = StartSTSFake(t, principals)

	if o.MappingConfigMap != "" && o.KubeAPIServer == nil {
		t.Fatalf("harness: ChainOptions.MappingConfigMap needs KubeAPIServer")
	}
	if o.KubeAPIServer != nil {
		if len(o.Clusters) != 1 {
			t.Fatalf("harness: a chain on the real kube-apiserver has one cluster, not %d", len(o.Clusters))
		}
		c.KubeProxyToken = o.KubeAPIServer.NewProxyToken(t)
		c.ProxyTokenVolume = c.KubeProxyToken.Volume
	} else {
		c.ProxyTokenVolume = NewProjectedDir(t, map[string][]byte{ProxyTokenFileName: []byte(NewProxyToken(t))})
	}
	proxyTokenFile := c.ProxyTokenVolume.Path(ProxyTokenFileName)

	serveOpts := ServeOptions{STS: c.STS, UpstreamTokenFile: proxyTokenFile, ExtraArgs: o.ServeArgs}
	renderFiles := map[string]string{}
	apiservers := map[string]string{}
	for _, cc := range o.Clusters {
		if cc.Mapping == nil {
			cc.Mapping = DefaultMapping()
		}
		tlsOf, ok := upstreamTLS[cc.APIServer]
		if !ok {
			t.Fatalf("harness: %s has no TLS cluster %q", o.EnvoyConfig, cc.APIServer)
		}
		rc := &RunningCluster{ChainCluster: cc}
		rc.MappingVolume = NewProjectedDir(t, map[string][]byte{MappingFileName: cc.Mapping})
		if k := o.KubeAPIServer; k != nil {
			if !slices.Contains(kubeAPIServerSANs(), tlsOf.SNI) {
				t.Fatalf("harness: %s pins sni %q, which the kube-apiserver's certificate does not name", o.EnvoyConfig, tlsOf.SNI)
			}
			rc.Kube = k
			apiservers[cc.APIServer] = k.Addr
			renderFiles[tlsOf.CAFile] = k.CAFile
		} else {
			rc.APIServer = StartAPIServer(t, APIServerOptions{
				ProxyTokenFile:    proxyTokenFile,
				SANs:              []string{tlsOf.SNI},
				Name:              "apiserver-fake-" + cc.Name,
				ImpersonationMode: o.ImpersonationMode,
			})
			apiservers[cc.APIServer] = rc.APIServer.Addr
			renderFiles[tlsOf.CAFile] = rc.APIServer.CAFile
		}
		if cc.Name == serveDefaultCluster {
			serveOpts.ClusterID, serveOpts.MappingFile = cc.ID, rc.MappingVolume.Path(MappingFileName)
			if o.MappingConfigMap != "" {
				serveOpts.MappingFile = ""
				serveOpts.MappingConfigMap = o.MappingConfigMap
				serveOpts.Kubeconfig = o.KubeAPIServer.ProxyKubeconfig(t, proxyTokenFile)
			}
		} else {
			serveOpts.Clusters = append(serveOpts.Clusters, ServeCluster{Name: cc.Name, ClusterID: cc.ID, MappingFile: rc.MappingVolume.Path(MappingFileName)})
		}
		c.Clusters = append(c.Clusters, rc)
	}
	if serveOpts.ClusterID == "" {
		// serve always has a cluster of its flags; when every cluster is selected by
		// a route's context_extensions, that one is reached by no route.
		serveOpts.ClusterID = "e2e-unrouted"
		serveOpts.MappingFile = NewProjectedDir(t, map[string][]byte{MappingFileName: []byte("{}\n")}).Path(MappingFileName)
	}
	c.Serve = StartServe(t, serveOpts)

	c.CA = NewCA(t)
	cfg, ports := RenderEnvoy(t, configPath, RenderOptions{
		AuthzAddr:  c.Serve.GRPCAddr,
		APIServers: apiservers,
		CA:         c.CA,
		ServerCert: c.CA.Issue(t, "envoy", "localhost", "127.0.0.1"),
		Files:      renderFiles,
		Stats:      true,
	})
	for _, rc := range c.Clusters {
		addr, ok := ports.Listeners[rc.Listener]
		if !ok {
			t.Fatalf("harness: %s has no listener %q", o.EnvoyConfig, rc.Listener)
		}
		rc.Addr = addr
	}
	statsListeners := StatsListenersOf(t, configPath)
	c.EnvoyStats = map[string]string{}
	for _, name := range statsListeners {
		c.EnvoyStats[name] = ports.Listeners[name]
	}
	c.Envoy = StartEnvoy(t, cfg)

	c.home = newClientHome(t)
	c.env = clientEnv(c.home)
	c.credLog = filepath.Join(t.TempDir(), "credentials")
	if err := os.Mkdir(c.credLog, 0o700); err != nil {
		t.Fatalf("harness: %v", err)
	}
	c.writeKubeconfig(t)
	c.Canary = NewCanary()
	// Registered last, so it runs first on cleanup, while every process still runs.
	t.Cleanup(func() { c.checkCanaries(t) })
	return c
}

// checkCanaries scans everything the chain wrote or answered for its secrets (see
// Chain.Canary). A token, presigned URL, signature or session token in a log, a
// metric or an error message fails the test.
func (c *Chain) checkCanaries(t testing.TB) {
	t.Helper()
	for _, id := range c.Identities {
		for _, secret := range []string{id.SecretAccessKey, id.SessionToken} {
			if len(secret) >= canaryMinLen {
				_ = c.Canary.Add("credential of "+id.Name, secret)
			}
		}
	}
	if entries, err := os.ReadDir(c.credLog); err == nil {
		for _, e := range entries {
			for _, tok := range c.IssuedTokens(t, e.Name()) {
				_ = c.Canary.AddToken(tok)
			}
		}
	}
	watch := func(name string, p *Process) {
		c.Canary.Watch(name+" stdout", p.Stdout)
		c.Canary.Watch(name+" stderr", p.Stderr)
	}
	watch("sts-fake", c.STS.Process)
	watch("kube-iam-authz", c.Serve.Process)
	watch("envoy", c.Envoy.Process)
	for _, rc := range c.Clusters {
		if rc.APIServer != nil {
			watch(rc.APIServer.Name, rc.APIServer.Process)
		}
		if rc.Kube != nil {
			// Shared by the whole test process: scanning it for this chain's secrets
			// is still exact (no other chain knows them).
			watch("kube-apiserver", rc.Kube.Process)
			c.Canary.Watch("kube-apiserver audit log", func() string { return readFile(rc.Kube.AuditLogPath) })
		}
	}
	if resp, err := c.Serve.client.Get("http://" + c.Serve.HTTPAddr + "/metrics"); err == nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		c.Canary.Record("kube-iam-authz /metrics", string(b))
	}
	// Stop the processes first: serve buffers its log for up to a second and
	// flushes on SIGTERM, Envoy flushes its access log on exit; every line ever
	// written is then scanned.
	c.Serve.Stop()
	c.Envoy.Stop()
	c.STS.Stop()
	for _, rc := range c.Clusters {
		if rc.APIServer != nil {
			rc.APIServer.Stop()
		}
	}
	c.Canary.Check(t)
}

// recordKubectl keeps kubectl's output for the canary scan.
func (c *Chain) recordKubectl(res KubectlResult) KubectlResult {
	c.Canary.Record("kubectl stdout", res.Stdout)
	c.Canary.Record("kubectl stderr", res.Stderr)
	return res
}

// NewProxyToken returns a random bearer token for the proxy identity.
func NewProxyToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return "e2e-proxy-" + hex.EncodeToString(b)
}

// RedactedBearer is how the API-server stand-in records an Authorization header
// carrying tok (it never exposes a credential): "Bearer sha256:" + token.Fingerprint.
func RedactedBearer(tok string) string { return "Bearer sha256:" + token.Fingerprint(tok) }

// Cluster returns the running cluster named name, failing the test if there is none.
func (c *Chain) Cluster(t testing.TB, name string) *RunningCluster {
	t.Helper()
	for _, rc := range c.Clusters {
		if rc.Name == name {
			return rc
		}
	}
	t.Fatalf("harness: chain has no cluster %q", name)
	return nil
}

// Identity returns the identity named name, failing the test if there is none.
func (c *Chain) Identity(t testing.TB, name string) Identity {
	t.Helper()
	for _, id := range c.Identities {
		if id.Name == name {
			return id
		}
	}
	t.Fatalf("harness: chain has no identity %q", name)
	return Identity{}
}

// Kubectl runs kubectl against the first cluster as kubeconfig user user (for
// example "admin@default", or KubeUser's result).
func (c *Chain) Kubectl(t testing.TB, user string, args ...string) KubectlResult {
	t.Helper()
	return c.KubectlOn(t, c.Clusters[0].Name, user, args...)
}

// KubectlOn runs kubectl against cluster (its Envoy listener) as kubeconfig user
// user; the user's exec plugin may sign for another cluster's id.
func (c *Chain) KubectlOn(t testing.TB, cluster, user string, args ...string) KubectlResult {
	t.Helper()
	full := append([]string{"--cluster", cluster, "--user", user}, args...)
	return c.recordKubectl(runKubectl(t, c.kubectl, c.Kubeconfig, c.env, full...))
}

// KubectlWithToken runs kubectl against cluster with a fixed bearer token (an
// invalid or expired one) instead of an exec plugin.
func (c *Chain) KubectlWithToken(t testing.TB, cluster, tok string, args ...string) KubectlResult {
	t.Helper()
	if len(tok) >= canaryMinLen {
		_ = c.Canary.AddToken(tok)
	}
	full := append([]string{"--cluster", cluster, "--user", anonymousUser, "--token", tok}, args...)
	return c.recordKubectl(runKubectl(t, c.kubectl, c.Kubeconfig, c.env, full...))
}

// Producers of a kubeconfig user's token.
const (
	// ProducerToken is `kube-iam-authz token --cluster-id ID`.
	ProducerToken = ""
	// ProducerAWSCLI is `aws eks get-token --cluster-name ID`.
	ProducerAWSCLI = "-awscli"
	// ProducerTokenClusterName is `kube-iam-authz token --cluster-name ID`:
	// an EKS kubeconfig's flag with kube-iam-authz as the command.
	ProducerTokenClusterName = "-cluster-name"
)

// KubeUser names the kubeconfig user of identity whose tokens producer makes for
// cluster's id: KubeUser("admin", ProducerAWSCLI, "default") = "admin-awscli@default".
func KubeUser(identity, producer, cluster string) string {
	return identity + producer + "@" + cluster
}

// anonymousUser is the kubeconfig user without credentials (KubectlWithToken).
const anonymousUser = "no-credentials"

// Recorded returns what the first cluster's API server received since its last
// reset.
func (c *Chain) Recorded(t testing.TB) []Received {
	t.Helper()
	return c.standIn(t).Recorded(t)
}

// ResetRecorded clears the first cluster's API-server recorder.
func (c *Chain) ResetRecorded(t testing.TB) {
	t.Helper()
	c.standIn(t).ResetRecorded(t)
}

// standIn returns the first cluster's stand-in, failing the test on a chain whose
// API server is the real kube-apiserver (which records nothing raw: read its audit
// log).
func (c *Chain) standIn(t testing.TB) *APIServer {
	t.Helper()
	if c.Clusters[0].APIServer == nil {
		t.Fatalf("harness: the chain runs the real kube-apiserver, which has no recorder; read its audit log")
	}
	return c.Clusters[0].APIServer
}

// UpdateMapping replaces cluster's aws-auth file the way the kubelet updates a
// ConfigMap volume.
func (c *Chain) UpdateMapping(t testing.TB, cluster string, data []byte) {
	t.Helper()
	c.Cluster(t, cluster).MappingVolume.Update(t, map[string][]byte{MappingFileName: data})
}

// RotateProxyToken writes a new proxy token the way the kubelet rotates a projected
// service-account token and returns it. The API server stand-ins accept only the
// new one from then on; on the real kube-apiserver it is a new TokenRequest token
// and the old one stays valid until it expires.
func (c *Chain) RotateProxyToken(t testing.TB) string {
	t.Helper()
	if c.KubeProxyToken != nil {
		return c.KubeProxyToken.Rotate(t)
	}
	tok := NewProxyToken(t)
	c.ProxyTokenVolume.Update(t, map[string][]byte{ProxyTokenFileName: []byte(tok)})
	return tok
}

// ProxyToken returns the proxy token in force.
func (c *Chain) ProxyToken(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(c.ProxyTokenVolume.Path(ProxyTokenFileName))
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// IssuedTokens returns every token user's exec plugin has handed kubectl so far, in
// order (the kubeconfig's exec command records each ExecCredential it passes on).
func (c *Chain) IssuedTokens(t testing.TB, user string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(c.credLog, user))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	defer f.Close()
	// awscli pretty-prints its ExecCredential over several lines: decode a stream
	// of JSON values rather than lines.
	var out []string
	dec := json.NewDecoder(f)
	for {
		var cred struct {
			Status struct {
				Token string `json:"token"`
			} `json:"status"`
		}
		err := dec.Decode(&cred)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("harness: exec credential of %s: %v", user, err)
		}
		out = append(out, cred.Status.Token)
	}
}

// captureScript runs the exec plugin given as its arguments, appends the
// ExecCredential it printed to $KIA_CRED_LOG and hands it to kubectl unchanged, so a
// test knows exactly which client token it must never find upstream.
const captureScript = `#!/bin/sh
# exec-capture: run the credential plugin, keep a copy of its ExecCredential.
out=$("$@") || exit $?
printf '%s\n' "$out" >> "$KIA_CRED_LOG"
printf '%s\n' "$out"
`

func (c *Chain) writeKubeconfig(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "exec-capture")
	if err := os.WriteFile(script, []byte(captureScript), 0o700); err != nil {
		t.Fatalf("harness: %v", err)
	}
	authz := BinPath(t, BinAuthz)
	aws := "aws"
	if p, err := exec.LookPath("aws"); err == nil {
		aws = p
	}

	cfg := clientcmdv1.Config{Kind: "Config", APIVersion: "v1"}
	for _, rc := range c.Clusters {
		cfg.Clusters = append(cfg.Clusters, clientcmdv1.NamedCluster{Name: rc.Name, Cluster: clientcmdv1.Cluster{
			Server:               "https://" + rc.Addr,
			CertificateAuthority: c.CA.CertFile,
		}})
		for _, id := range c.Identities {
			env := []clientcmdv1.ExecEnvVar{
				{Name: "AWS_ACCESS_KEY_ID", Value: id.AccessKeyID},
				{Name: "AWS_SECRET_ACCESS_KEY", Value: id.SecretAccessKey},
			}
			if id.SessionToken != "" {
				env = append(env, clientcmdv1.ExecEnvVar{Name: "AWS_SESSION_TOKEN", Value: id.SessionToken})
			}
			for _, u := range []struct {
				producer   string
				apiVersion string
				argv       []string
			}{
				{ProducerToken, "client.authentication.k8s.io/v1", []string{authz, "token", "--cluster-id", rc.ID}},
				{ProducerTokenClusterName, "client.authentication.k8s.io/v1beta1", []string{authz, "token", "--cluster-name", rc.ID}},
				// What `aws eks update-kubeconfig` writes. Without a region awscli v1 signs
				// for the global endpoint sts.amazonaws.com.
				{ProducerAWSCLI, "client.authentication.k8s.io/v1beta1", []string{aws, "eks", "get-token", "--cluster-name", rc.ID, "--output", "json"}},
			} {
				name := KubeUser(id.Name, u.producer, rc.Name)
				cfg.AuthInfos = append(cfg.AuthInfos, clientcmdv1.NamedAuthInfo{Name: name, AuthInfo: clientcmdv1.AuthInfo{
					Exec: &clientcmdv1.ExecConfig{
						Command:         script,
						Args:            u.argv,
						Env:             append(append([]clientcmdv1.ExecEnvVar(nil), env...), clientcmdv1.ExecEnvVar{Name: "KIA_CRED_LOG", Value: filepath.Join(c.credLog, name)}),
						APIVersion:      u.apiVersion,
						InteractiveMode: clientcmdv1.NeverExecInteractiveMode,
					},
				}})
			}
		}
		cfg.Contexts = append(cfg.Contexts, clientcmdv1.NamedContext{Name: rc.Name, Context: clientcmdv1.Context{
			Cluster: rc.Name, AuthInfo: KubeUser(IdentityAdmin, ProducerToken, rc.Name),
		}})
	}
	cfg.AuthInfos = append(cfg.AuthInfos, clientcmdv1.NamedAuthInfo{Name: anonymousUser})
	cfg.CurrentContext = c.Clusters[0].Name
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatalf("harness: kubeconfig: %v", err)
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, data, 0o600); err != nil {
		t.Fatalf("harness: %v", err)
	}
}
