package main

import (
	"bufio"
	"context"
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

	"github.com/kube-iam-authz/kube-iam-authz/cmd/kube-iam-authz/app"
	envoyconfig "github.com/kube-iam-authz/kube-iam-authz/envoy"
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
	if want := []string{"apiserver", "envoy", "kube-iam-authz", "sts"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	svc := func(name string) types.ServiceConfig { return p.Services[name] }

	sidecar, secrets, err := envoyconfig.LoadWithSecrets(filepath.Join(repoRoot, "envoy", "sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := envoyconfig.InventorizeAll(sidecar, secrets)
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
		for _, name := range []string{"sts", "apiserver", "kube-iam-authz"} {
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
			if s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 || s.HealthCheck.Test[0] != "CMD" {
				t.Errorf("%s: want a CMD healthcheck, got %+v", s.Name, s.HealthCheck)
			}
			for dep, d := range s.DependsOn {
				if d.Condition != types.ServiceConditionHealthy {
					t.Errorf("%s depends on %s with condition %q, want service_healthy", s.Name, dep, d.Condition)
				}
			}
		}
		// Our images' healthchecks run the real healthcheck command.
		for _, name := range []string{"sts", "apiserver", "kube-iam-authz"} {
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
		envoy, authz, sts, api := svc("envoy"), svc("kube-iam-authz"), svc("sts"), svc("apiserver")

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

		// Every file sidecar.yaml reads is provided.
		pkiMount := mountAt(t, api, mustFlag(t, "apiserver", api.Command, "cert-dir"))
		for _, f := range inv.Files {
			if secrets[f] != nil {
				if m := mountAt(t, envoy, f); m.Source != filepath.Join(root, "envoy", "sds", path.Base(f)) {
					t.Errorf("envoy's %s comes from %s, want envoy/sds/%s", f, m.Source, path.Base(f))
				}
				continue
			}
			switch path.Base(f) {
			case "tls.crt", "tls.key":
				if !regexp.MustCompile(`cp \S+ ` + regexp.QuoteMeta(f) + `( |$)`).MatchString(script) {
					t.Errorf("envoy entrypoint does not provide %s", f)
				}
				if !slices.ContainsFunc(envoy.Tmpfs, func(m string) bool { return strings.HasPrefix(m, path.Dir(f)+":") || m == path.Dir(f) }) {
					t.Errorf("%s is not on a tmpfs (read-only root filesystem)", path.Dir(f))
				}
			case "ca.crt":
				if m := mountAt(t, envoy, path.Dir(f)); m.Source != pkiMount.Source {
					t.Errorf("envoy's %s comes from volume %s, the API server writes its CA to %s", f, m.Source, pkiMount.Source)
				}
			default:
				t.Errorf("sidecar.yaml reads %s, which compose does not provide", f)
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

		// The API server: alias, port and certificate name sidecar.yaml uses.
		apiCluster := clusterAddr[inv.APIServers[0]]
		if _, port := addrPort(t, mustFlag(t, "apiserver", api.Command, "listen")); port != apiCluster.port {
			t.Errorf("apiserver listens on %d, sidecar.yaml dials %d", port, apiCluster.port)
		}
		if n := api.Networks["default"]; n == nil || !slices.Contains(n.Aliases, apiCluster.host) {
			t.Errorf("apiserver has no network alias %s", apiCluster.host)
		}
		if !slices.Contains(strings.Split(mustFlag(t, "apiserver", api.Command, "tls-san"), ","), apiCluster.host) {
			t.Errorf("apiserver certificate lacks the SAN %s that sidecar.yaml verifies", apiCluster.host)
		}

		// The proxy token: the file serve sends is the one the API server accepts.
		token := get("upstream-token-file")
		if token != mustFlag(t, "apiserver", api.Command, "proxy-token-file") || !strings.HasPrefix(token, "/run/secrets/") {
			t.Errorf("--upstream-token-file %s and the API server's --proxy-token-file differ or are not a secret", token)
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
