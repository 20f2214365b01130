package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"

	"github.com/kube-iam-authz/kube-iam-authz/cmd/kube-iam-authz/app"
	"github.com/kube-iam-authz/kube-iam-authz/envoy"
	"github.com/kube-iam-authz/kube-iam-authz/internal/kubecluster"
)

// composeKubeconfig is the kubeconfig docker-compose.yml's comment tells
// readers to use; paths in it are relative to its own directory, as
// kubectl resolves them.
const composeKubeconfig = "examples/compose/kubeconfig.yaml"

// loadCompose loads docker-compose.yml the way `docker compose` does
// (schema validation, interpolation, path resolution) with an empty
// environment, so nothing on the test machine changes the answer.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "docker-compose.yml")
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: content}},
		Environment: types.Mapping{},
	})
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

// flagValue returns the value of --name in args (--name=v or --name v) and
// whether it is there.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func mustFlag(t *testing.T, service string, args []string, name string) string {
	t.Helper()
	v, ok := flagValue(args, name)
	if !ok {
		t.Fatalf("%s: no --%s in %v", service, name, args)
	}
	return v
}

// mountAt returns the service's volume whose target is exactly dir.
func mountAt(t *testing.T, s types.ServiceConfig, dir string) types.ServiceVolumeConfig {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Target == dir {
			return v
		}
	}
	t.Fatalf("%s: nothing mounted at %s", s.Name, dir)
	return types.ServiceVolumeConfig{}
}

// dockerfileStages maps each `FROM ... AS name` stage of the Dockerfile to
// its lines.
func dockerfileStages(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	from := regexp.MustCompile(`(?i)^FROM\s+(\S+)\s+AS\s+(\S+)`)
	stages := map[string][]string{}
	current := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := from.FindStringSubmatch(line); m != nil {
			current = m[2]
		}
		if current != "" {
			stages[current] = append(stages[current], line)
		}
	}
	return stages
}

func addrPort(t *testing.T, addr string) (string, uint32) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return host, uint32(n)
}

func cobraCommand(t *testing.T, name string) *cobra.Command {
	t.Helper()
	root := app.NewRootCommand(app.Streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard})
	cmd, _, err := root.Find([]string{name})
	if err != nil || cmd.Name() != name {
		t.Fatalf("kube-iam-authz has no %s command: %v", name, err)
	}
	return cmd
}

// TestCompose checks docker-compose.yml against the repository and the
// local demo: it cannot be run here (no container engine), so every name
// it relies on is checked instead.
func TestCompose(t *testing.T) {
	p := loadCompose(t)
	root, _ := filepath.Abs(repoRoot)

	var names []string
	for name := range p.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	if want := []string{"envoy", "etcd", "kube-apiserver", "kube-iam-authz", "sts"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	svc := func(name string) types.ServiceConfig { return p.Services[name] }

	sidecar, secrets, err := envoy.LoadWithSecrets(filepath.Join(repoRoot, "envoy", "sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := envoy.InventorizeAll(sidecar, secrets)
	if err != nil {
		t.Fatal(err)
	}
	clusterAddr := map[string]struct {
		host string
		port uint32
	}{}
	for _, cl := range sidecar.GetStaticResources().GetClusters() {
		sa := cl.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		clusterAddr[cl.GetName()] = struct {
			host string
			port uint32
		}{sa.GetAddress(), sa.GetPortValue()}
	}
	listenerPort := sidecar.GetStaticResources().GetListeners()[0].GetAddress().GetSocketAddress().GetPortValue()

	t.Run("build targets and images", func(t *testing.T) {
		stages := dockerfileStages(t)
		for _, name := range []string{"sts", "kube-iam-authz"} {
			s := svc(name)
			if s.Build == nil {
				t.Errorf("%s: not built from the Dockerfile", name)
				continue
			}
			if s.Build.Context != root {
				t.Errorf("%s: build context %s, want the repository root", name, s.Build.Context)
			}
			if df := s.Build.Dockerfile; df != "" && df != "Dockerfile" {
				t.Errorf("%s: dockerfile %q, want the repository's Dockerfile", name, df)
			}
			lines, ok := stages[s.Build.Target]
			if !ok {
				t.Errorf("%s: build target %q is not a stage of the Dockerfile", name, s.Build.Target)
				continue
			}
			if !strings.Contains(lines[0], "distroless") && !strings.Contains(lines[0], "scratch") {
				t.Errorf("%s: stage %s is based on %q, want distroless or scratch", name, s.Build.Target, lines[0])
			}
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "USER 65532") }) {
				t.Errorf("%s: stage %s does not run as uid 65532", name, s.Build.Target)
			}
			// The healthcheck's binary is in the image.
			if hc := s.HealthCheck; hc != nil && len(hc.Test) > 1 {
				bin := hc.Test[1]
				if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "COPY ") && strings.HasSuffix(l, " "+bin) }) {
					t.Errorf("%s: healthcheck runs %s, which stage %s does not copy in", name, bin, s.Build.Target)
				}
			}
		}
		makefile, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
		if err != nil {
			t.Fatal(err)
		}
		v := regexp.MustCompile(`(?m)^ENVOY_VERSION\s*:=\s*(\S+)`).FindSubmatch(makefile)
		if v == nil || svc("envoy").Image != "envoyproxy/envoy:v"+string(v[1]) {
			t.Errorf("envoy image %q, want the Envoy the tests run (Makefile ENVOY_VERSION)", svc("envoy").Image)
		}
		// The official kube-apiserver image of the release `make
		// kube-apiserver` builds, and the etcd image it is tested with.
		kv := regexp.MustCompile(`(?m)^KUBE_VERSION\s*:=\s*(\S+)`).FindSubmatch(makefile)
		if kv == nil || string(kv[1]) != "v"+kubeAPIServerVersion || svc("kube-apiserver").Image != "registry.k8s.io/kube-apiserver:"+string(kv[1]) {
			t.Errorf("kube-apiserver image %q, want registry.k8s.io/kube-apiserver at the Makefile's KUBE_VERSION (%s) and the demo's v%s", svc("kube-apiserver").Image, kv, kubeAPIServerVersion)
		}
		if svc("etcd").Image != composeEtcdImage {
			t.Errorf("etcd image %q, want %s", svc("etcd").Image, composeEtcdImage)
		}
		for _, name := range []string{"etcd", "kube-apiserver"} {
			if svc(name).Build != nil {
				t.Errorf("%s: built locally, want the official image", name)
			}
		}
	})

	t.Run("every referenced file exists", func(t *testing.T) {
		for _, s := range p.Services {
			for _, v := range s.Volumes {
				if v.Type != types.VolumeTypeBind {
					if _, ok := p.Volumes[v.Source]; !ok {
						t.Errorf("%s: volume %q is not declared", s.Name, v.Source)
					}
					continue
				}
				if !strings.HasPrefix(v.Source, root+string(filepath.Separator)) {
					t.Errorf("%s: bind mount %s is outside the repository", s.Name, v.Source)
				}
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s: bind mount source: %v", s.Name, err)
				}
				if !v.ReadOnly {
					t.Errorf("%s: bind mount %s should be read-only", s.Name, v.Source)
				}
			}
			for _, sec := range s.Secrets {
				if _, ok := p.Secrets[sec.Source]; !ok {
					t.Errorf("%s: secret %q is not declared", s.Name, sec.Source)
				}
			}
		}
		for name, sec := range p.Secrets {
			if _, err := os.Stat(sec.File); err != nil {
				t.Errorf("secret %s: %v", name, err)
			}
		}
	})

	t.Run("hardening and health", func(t *testing.T) {
		for _, s := range p.Services {
			if !s.ReadOnly {
				t.Errorf("%s: read_only must be true", s.Name)
			}
			if !slices.Equal(s.CapDrop, []string{"ALL"}) || len(s.CapAdd) > 0 {
				t.Errorf("%s: cap_drop %v cap_add %v, want ALL and none", s.Name, s.CapDrop, s.CapAdd)
			}
			if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
				t.Errorf("%s: no no-new-privileges", s.Name)
			}
			if s.Privileged {
				t.Errorf("%s: privileged", s.Name)
			}
			if s.User != "" && s.User != "65532:65532" {
				t.Errorf("%s: user %q, want the images' uid 65532", s.Name, s.User)
			}
			_, unprobed := noProbe[s.Name]
			switch {
			case unprobed && s.HealthCheck != nil:
				t.Errorf("%s has a healthcheck now: take it off noProbe", s.Name)
			case !unprobed && (s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 || s.HealthCheck.Test[0] != "CMD"):
				t.Errorf("%s: want a CMD healthcheck, got %+v", s.Name, s.HealthCheck)
			}
			for dep, d := range s.DependsOn {
				want := types.ServiceConditionHealthy
				if _, ok := noProbe[dep]; ok {
					want = types.ServiceConditionStarted
				}
				if d.Condition != want {
					t.Errorf("%s depends on %s with condition %q, want %s", s.Name, dep, d.Condition, want)
				}
			}
		}
		// Our images' healthchecks run the real healthcheck command.
		for _, name := range []string{"sts", "kube-iam-authz"} {
			test := svc(name).HealthCheck.Test
			if len(test) < 3 || test[1] != "/usr/local/bin/kube-iam-authz" || test[2] != "healthcheck" {
				t.Errorf("%s: healthcheck %v, want kube-iam-authz healthcheck", name, test)
				continue
			}
			if err := cobraCommand(t, "healthcheck").ParseFlags(test[3:]); err != nil {
				t.Errorf("%s: healthcheck flags %v: %v", name, test[3:], err)
			}
		}
	})

	t.Run("the chain is wired like the pod and the local demo", func(t *testing.T) {
		envoy, authz, sts, api, etcd := svc("envoy"), svc("kube-iam-authz"), svc("sts"), svc("kube-apiserver"), svc("etcd")

		// Envoy runs the reviewed sidecar.yaml unchanged.
		script := strings.Join(envoy.Entrypoint, " ")
		cfgPath := regexp.MustCompile(`--config-path\s+(\S+)`).FindStringSubmatch(script)
		if cfgPath == nil {
			t.Fatalf("envoy entrypoint %q has no --config-path", script)
		}
		if m := mountAt(t, envoy, cfgPath[1]); m.Source != filepath.Join(root, "envoy", "sidecar.yaml") {
			t.Errorf("envoy runs %s from %s, want envoy/sidecar.yaml", cfgPath[1], m.Source)
		}
		if envoy.NetworkMode != "service:kube-iam-authz" {
			t.Errorf("envoy network_mode %q: must share kube-iam-authz's namespace (ext_authz and admin on loopback)", envoy.NetworkMode)
		}

		// Every file sidecar.yaml reads is copied, onto a tmpfs, from the
		// certificate directory kube-apiserver writes: its serving
		// certificate (which ends with its CA) and key.
		certDir := mustFlag(t, "kube-apiserver", api.Command, "cert-dir")
		if _, ok := flagValue(api.Command, "tls-cert-file"); ok {
			t.Errorf("kube-apiserver has --tls-cert-file: the compose chain relies on its self-signed certificate in --cert-dir")
		}
		pkiMount := mountAt(t, api, certDir)
		for _, f := range inv.Files {
			if secrets[f] != nil {
				if m := mountAt(t, envoy, f); m.Source != filepath.Join(root, "envoy", "sds", path.Base(f)) {
					t.Errorf("envoy's %s comes from %s, want envoy/sds/%s", f, m.Source, path.Base(f))
				}
				continue
			}
			want := map[string]string{"tls.crt": "apiserver.crt", "tls.key": "apiserver.key", "ca.crt": "apiserver.crt"}[path.Base(f)]
			if want == "" {
				t.Errorf("sidecar.yaml reads %s, which compose does not provide", f)
				continue
			}
			cp := regexp.MustCompile(`cp (\S+) ` + regexp.QuoteMeta(f) + `( |$)`).FindStringSubmatch(script)
			if cp == nil {
				t.Errorf("envoy entrypoint does not provide %s", f)
				continue
			}
			if path.Base(cp[1]) != want || mountAt(t, envoy, path.Dir(cp[1])).Source != pkiMount.Source {
				t.Errorf("envoy's %s is %s, want %s from kube-apiserver's --cert-dir volume %s", f, cp[1], want, pkiMount.Source)
			}
			if !slices.ContainsFunc(envoy.Tmpfs, func(m string) bool { return strings.HasPrefix(m, path.Dir(f)+":") || m == path.Dir(f) }) {
				t.Errorf("%s is not on a tmpfs (read-only root filesystem)", path.Dir(f))
			}
		}

		// ext_authz: the address sidecar.yaml dials is where serve listens.
		serve := cobraCommand(t, "serve")
		if len(authz.Command) == 0 || authz.Command[0] != "serve" {
			t.Fatalf("kube-iam-authz command %v: want serve", authz.Command)
		}
		if err := serve.ParseFlags(authz.Command[1:]); err != nil {
			t.Fatalf("kube-iam-authz serve does not accept %v: %v", authz.Command[1:], err)
		}
		get := func(name string) string {
			v, err := serve.Flags().GetString(name)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		authzCluster := clusterAddr[inv.AuthzClusters[0]]
		if h, port := addrPort(t, get("grpc-listen")); port != authzCluster.port || (h != authzCluster.host && h != "0.0.0.0") {
			t.Errorf("--grpc-listen %s, sidecar.yaml calls %s:%d", get("grpc-listen"), authzCluster.host, authzCluster.port)
		}
		if get("cluster-id") != clusterID {
			t.Errorf("--cluster-id %q, the demo's tokens are for %q", get("cluster-id"), clusterID)
		}

		// The API server: alias and port sidecar.yaml dials. The
		// self-signed certificate names kubernetes.default.svc (one of
		// kube-apiserver's fixed names for it) and the advertise address.
		apiCluster := clusterAddr[inv.APIServers[0]]
		securePort := mustFlag(t, "kube-apiserver", api.Command, "secure-port")
		if securePort != strconv.Itoa(int(apiCluster.port)) {
			t.Errorf("kube-apiserver listens on %s, sidecar.yaml dials %d", securePort, apiCluster.port)
		}
		if n := api.Networks["default"]; n == nil || !slices.Contains(n.Aliases, apiCluster.host) || apiCluster.host != "kubernetes.default.svc" {
			t.Errorf("kube-apiserver has no network alias %s", apiCluster.host)
		}
		if got := mustFlag(t, "kube-apiserver", api.Command, "advertise-address"); got != "127.0.0.1" {
			t.Errorf("--advertise-address %s: the certificate must name 127.0.0.1, which kubectl on the host dials", got)
		}

		// What the local demo runs too: RBAC, the same audit policy, etcd.
		if got := mustFlag(t, "kube-apiserver", api.Command, "authorization-mode"); got != "Node,RBAC" {
			t.Errorf("--authorization-mode %s, want Node,RBAC", got)
		}
		if m := mountAt(t, api, mustFlag(t, "kube-apiserver", api.Command, "audit-policy-file")); m.Source != filepath.Join(root, kubecluster.AuditPolicyFile) {
			t.Errorf("audit policy from %s, the local demo uses %s", m.Source, kubecluster.AuditPolicyFile)
		}
		etcdURL := mustFlag(t, "kube-apiserver", api.Command, "etcd-servers")
		etcdHost, etcdPort := addrPort(t, strings.TrimPrefix(etcdURL, "http://"))
		if _, listenPort := addrPort(t, strings.TrimPrefix(mustFlag(t, "etcd", etcd.Command, "listen-client-urls"), "http://")); etcdHost != "etcd" || etcdPort != listenPort {
			t.Errorf("--etcd-servers %s is not the etcd service's client port %d", etcdURL, listenPort)
		}
		if _, ok := api.DependsOn["etcd"]; !ok {
			t.Errorf("kube-apiserver does not wait for etcd")
		}

		// The proxy token: the file serve sends is a token kube-apiserver
		// knows, for the user the shipped RBAC binds (the proxy's service
		// account, by name). The admin token of admin.kubeconfig is the
		// system:masters line.
		token := get("upstream-token-file")
		if !strings.HasPrefix(token, "/run/secrets/") || len(authz.Secrets) != 1 || path.Base(token) != authz.Secrets[0].Source {
			t.Errorf("--upstream-token-file %s is not the service's secret", token)
		}
		proxyToken, err := os.ReadFile(p.Secrets[path.Base(token)].File)
		if err != nil {
			t.Fatal(err)
		}
		tokens := staticTokens(t, mountAt(t, api, mustFlag(t, "kube-apiserver", api.Command, "token-auth-file")).Source)
		ns, name, err := proxyServiceAccount(repoRoot)
		if err != nil {
			t.Fatal(err)
		}
		if got := tokens[strings.TrimSpace(string(proxyToken))]; got.user != "system:serviceaccount:"+ns+":"+name {
			t.Errorf("the proxy token is user %q in tokens.csv, want the proxy's service account %s/%s", got.user, ns, name)
		}
		admin := adminKubeconfig(t, filepath.Join(root, "examples", "compose", "admin.kubeconfig"))
		if got := tokens[admin.token]; !slices.Equal(got.groups, []string{"system:masters"}) {
			t.Errorf("admin.kubeconfig's token is %+v in tokens.csv, want a system:masters user", got)
		}
		apiPublished := map[string]bool{}
		for _, port := range api.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("kube-apiserver port %d published on %q, want 127.0.0.1", port.Target, port.HostIP)
			}
			apiPublished["https://"+port.HostIP+":"+port.Published] = strconv.Itoa(int(port.Target)) == securePort
		}
		if !apiPublished[admin.server] {
			t.Errorf("admin.kubeconfig's server %s is not kube-apiserver's published secure port (%v)", admin.server, apiPublished)
		}

		// STS: the endpoint serve calls, its CA, and the demo's principals.
		stsHost, stsPort := addrPort(t, strings.TrimPrefix(get("sts-endpoint"), "https://"))
		if _, ok := p.Services[stsHost]; !ok || !strings.HasPrefix(get("sts-endpoint"), "https://") {
			t.Errorf("--sts-endpoint %s is not the https sts service", get("sts-endpoint"))
		}
		if _, port := addrPort(t, mustFlag(t, "sts", sts.Command, "listen")); port != stsPort {
			t.Errorf("sts listens on %d, serve calls %d", port, stsPort)
		}
		if !slices.Contains(strings.Split(mustFlag(t, "sts", sts.Command, "tls-san"), ","), stsHost) {
			t.Errorf("sts certificate lacks the SAN %s", stsHost)
		}
		caOut := mustFlag(t, "sts", sts.Command, "ca-out")
		if mountAt(t, sts, path.Dir(caOut)).Source != mountAt(t, authz, path.Dir(get("sts-ca-file"))).Source || path.Base(caOut) != path.Base(get("sts-ca-file")) {
			t.Errorf("serve's --sts-ca-file %s is not the CA sts writes to %s", get("sts-ca-file"), caOut)
		}
		principals := mustFlag(t, "sts", sts.Command, "principals")
		if m := mountAt(t, sts, principals); m.Source != filepath.Join(root, principalsFile) {
			t.Errorf("sts loads %s, the local demo loads %s", m.Source, principalsFile)
		}

		// The mapping: examples/aws-auth.yaml through a directory mount.
		mf := get("mapping-file")
		m := mountAt(t, authz, path.Dir(mf))
		if _, err := os.Stat(filepath.Join(m.Source, path.Base(mf))); err != nil || filepath.Join(m.Source, path.Base(mf)) != filepath.Join(root, "examples", "aws-auth.yaml") {
			t.Errorf("--mapping-file %s is not examples/aws-auth.yaml (%v)", mf, err)
		}

		// Published ports: loopback, the local demo's numbers.
		published := map[uint32]string{}
		for _, port := range authz.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("port %d published on %q, want 127.0.0.1", port.Target, port.HostIP)
			}
			published[port.Target] = port.HostIP + ":" + port.Published
		}
		if got := published[listenerPort]; got != defaultEnvoyListen {
			t.Errorf("Envoy's listener %d is published as %q, the local demo uses %s", listenerPort, got, defaultEnvoyListen)
		}
		if _, port := addrPort(t, get("http-listen")); published[port] != defaultAuthzHTTP {
			t.Errorf("serve's HTTP port %d is published as %q, the local demo uses %s", port, published[port], defaultAuthzHTTP)
		}
	})
}

// composeEtcdImage is the etcd kube-apiserver v1.37 is tested with
// (kubeadm's DefaultEtcdVersion and hack/lib/etcd.sh in k8s.io/kubernetes
// v1.37.2: 3.7.0, image tag 3.7.0-0).
const composeEtcdImage = "registry.k8s.io/etcd:3.7.0-0"

// noProbe are the services whose image holds nothing to probe with (the
// official kube-apiserver image has no shell, no curl and no binary of
// ours); those depending on them wait for service_started.
var noProbe = map[string]string{"kube-apiserver": "registry.k8s.io/kube-apiserver is distroless"}

type staticToken struct {
	user   string
	groups []string
}

// staticTokens reads a kube-apiserver --token-auth-file (CSV: token, user,
// uid, "group,group").
func staticTokens(t *testing.T, file string) map[string]staticToken {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	out := map[string]staticToken{}
	for _, r := range rows {
		if len(r) != 4 {
			t.Fatalf("%s: row %v has %d fields, want token,user,uid,groups", file, r, len(r))
		}
		out[r[0]] = staticToken{user: r[1], groups: strings.Split(r[3], ",")}
	}
	return out
}

type adminConfig struct{ server, token string }

// adminKubeconfig reads the compose chain's bootstrap kubeconfig strictly.
func adminKubeconfig(t *testing.T, file string) adminConfig {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cfg clientcmdv1.Config
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(cfg.Clusters) != 1 || len(cfg.AuthInfos) != 1 || cfg.Clusters[0].Cluster.CertificateAuthority != "../../.demo/compose-ca.crt" {
		t.Fatalf("%s: want one cluster with the copied-out CA and one user: %+v", file, cfg)
	}
	return adminConfig{server: cfg.Clusters[0].Cluster.Server, token: cfg.AuthInfos[0].AuthInfo.Token}
}

// TestComposeKubeconfig keeps examples/compose/kubeconfig.yaml what the
// demo would write for the compose chain: same identities and keys, the
// published listener, the CA copied out of the apiserver container.
func TestComposeKubeconfig(t *testing.T) {
	ids, err := loadIdentities(filepath.Join(repoRoot, principalsFile))
	if err != nil {
		t.Fatal(err)
	}
	want, err := buildKubeconfig("https://"+defaultEnvoyListen, "../../.demo/compose-ca.crt", "../../bin/kube-iam-authz", "", ids)
	if err != nil {
		t.Fatal(err)
	}
	header := []byte("# GENERATED by `go test ./examples/demo -run TestComposeKubeconfig -update`.\n" +
		"# kubectl with the demo identities against `docker compose up` (see docker-compose.yml).\n" +
		"# Paths are relative to this file: run `make build` and copy the CA out first.\n")
	want = append(header, want...)
	file := filepath.Join(repoRoot, composeKubeconfig)
	if *updateGolden {
		if err := os.WriteFile(file, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is stale; regenerate with -update", composeKubeconfig)
	}
}
