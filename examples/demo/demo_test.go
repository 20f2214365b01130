package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/envoy"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

const repoRoot = "../.."

// TestScriptedIdentitiesMatchTheMapping maps each demo principal through
// examples/aws-auth.yaml with the real mapper: what the demo expects
// kubectl to print is what the server must decide, so the scripted part
// cannot drift from the example mapping unnoticed.
func TestScriptedIdentitiesMatchTheMapping(t *testing.T) {
	ids, err := loadIdentities(filepath.Join(repoRoot, principalsFile))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := mapping.LoadFile(filepath.Join(repoRoot, "examples", "aws-auth.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := mapping.NewMapper(mapping.MapperOptions{Snapshots: mapping.StaticSource{Snapshot: snap}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 {
		t.Fatalf("want 3 scripted identities, have %d", len(ids))
	}
	for _, id := range ids {
		t.Run(id.Context, func(t *testing.T) {
			p := id.Principal
			who, err := identity.FromSTS(p.ARN, p.Account, p.UserID, p.AccessKeyID)
			if err != nil {
				t.Fatalf("FromSTS(%s): %v", p.ARN, err)
			}
			user, err := mapper.Map(context.Background(), who)
			if !id.WantAllowed {
				if !errors.Is(err, kubeuser.ErrUnmapped) {
					t.Fatalf("Map(%s) = %+v, %v; want ErrUnmapped", p.ARN, user, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Map(%s): %v", p.ARN, err)
			}
			if user.Username != id.WantUser {
				t.Errorf("username %q, want %q", user.Username, id.WantUser)
			}
			got := append(slices.Clone(user.Groups), "system:authenticated")
			want := slices.Clone(id.WantGroups)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("groups %v (+system:authenticated), want %v", user.Groups, id.WantGroups)
			}
		})
	}
	if !slices.ContainsFunc(ids, func(c caller) bool { return c.WantAllowed && c.Principal.SessionToken != "" }) {
		t.Errorf("no allowed identity uses session credentials: the assumed-role path is not shown")
	}
}

func TestOptionsValidate(t *testing.T) {
	bin := t.TempDir()
	for _, name := range []string{"kube-iam-authz", "sts-fake", "kube-apiserver", "envoy", "etcd", "kubectl"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	good := func() *options {
		o, err := parseOptions(nil, func(string) string { return "" }, os.Stderr)
		if err != nil {
			t.Fatal(err)
		}
		o.RepoDir, o.BinDir = repoRoot, bin
		o.Envoy, o.Kubectl, o.Etcd = filepath.Join(bin, "envoy"), filepath.Join(bin, "kubectl"), filepath.Join(bin, "etcd")
		return o
	}
	tests := map[string]struct {
		edit    func(*options)
		wantErr []string
	}{
		"defaults": {edit: func(*options) {}},
		"a non-loopback address": {
			edit:    func(o *options) { o.Addrs.EnvoyListen = "0.0.0.0:8443" },
			wantErr: []string{"--envoy-listen", "not a loopback"},
		},
		"a port chosen by the kernel": {
			edit:    func(o *options) { o.Addrs.STS = "127.0.0.1:0" },
			wantErr: []string{"--sts-listen", "fixed port"},
		},
		"two components on one port": {
			edit:    func(o *options) { o.Addrs.AuthzHTTP = o.Addrs.AuthzGRPC },
			wantErr: []string{"--authz-grpc and --authz-http"},
		},
		"etcd's peer port on the API server's": {
			edit:    func(o *options) { o.Addrs.EtcdPeer = o.Addrs.APIServer },
			wantErr: []string{"--etcd-peer-listen and --apiserver-listen"},
		},
		"free ports ignore the fixed ones": {
			edit: func(o *options) { o.FreePorts, o.Addrs.AuthzHTTP = true, "nonsense" },
		},
		"missing binaries name the make target": {
			edit: func(o *options) {
				o.BinDir = t.TempDir()
				o.Envoy, o.Etcd = filepath.Join(o.BinDir, "envoy"), filepath.Join(o.BinDir, "etcd")
			},
			wantErr: []string{"make build", "make kube-apiserver", "make envoy", "make debs"},
		},
		"wrong repo": {
			edit:    func(o *options) { o.RepoDir = t.TempDir() },
			wantErr: []string{"envoy/sidecar.yaml", "examples/aws-auth.yaml", principalsFile, demoRBACFile, "examples/kubernetes/rbac.yaml"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := good()
			tc.edit(o)
			err := o.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %v", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v\nwant it to mention %q", err, w)
				}
			}
		})
	}
}

func TestParseOptionsEnvironment(t *testing.T) {
	env := map[string]string{"KIA_BIN": "/b", "KIA_ENVOY": "/e/envoy", "DEMO_ONESHOT": "1"}
	o, err := parseOptions(nil, func(k string) string { return env[k] }, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.BinDir != "/b" || o.Envoy != "/e/envoy" || !o.OneShot {
		t.Errorf("options %+v: want KIA_BIN, KIA_ENVOY and DEMO_ONESHOT applied", o)
	}
	env["DEMO_ONESHOT"] = "maybe"
	if _, err := parseOptions(nil, func(k string) string { return env[k] }, os.Stderr); err == nil || !strings.Contains(err.Error(), "DEMO_ONESHOT") {
		t.Errorf("DEMO_ONESHOT=maybe: err = %v, want a clear error", err)
	}
}

// whoamiTable is `kubectl auth whoami` output (kubectl v1.32).
const whoamiTable = `ATTRIBUTE                                           VALUE
Username                                            developer:alice
Groups                                              [developers viewers team-111122223333 system:authenticated]
Extra: arn                                          [arn:aws:sts::111122223333:assumed-role/developer/alice]
`

func TestWhoamiParsing(t *testing.T) {
	tests := map[string]struct {
		check func() bool
		want  bool
	}{
		"username":                      {check: func() bool { return hasField(whoamiTable, "Username", "developer:alice") }, want: true},
		"username prefix is not enough": {check: func() bool { return hasField(whoamiTable, "Username", "developer") }, want: false},
		"first group":                   {check: func() bool { return hasGroup(whoamiTable, "developers") }, want: true},
		"last group":                    {check: func() bool { return hasGroup(whoamiTable, "system:authenticated") }, want: true},
		"group prefix is not enough":    {check: func() bool { return hasGroup(whoamiTable, "team") }, want: false},
		"an extra is not a group":       {check: func() bool { return hasGroup(whoamiTable, "arn:aws:sts::111122223333:assumed-role/developer/alice") }, want: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.check(); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRenderEnvoy renders the reviewed sidecar for the demo's addresses:
// the result binds and dials loopback only and still passes the policy.
func TestRenderEnvoy(t *testing.T) {
	l := newLayout(t.TempDir())
	if err := os.MkdirAll(l.PKI, 0o700); err != nil {
		t.Fatal(err)
	}
	pki, err := writeListenerPKI(l.PKI, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a := addrs{EnvoyListen: "127.0.0.1:18443", EnvoyAdmin: "127.0.0.1:19901", AuthzGRPC: "127.0.0.1:19001", APIServer: "127.0.0.1:16443"}
	if err := renderEnvoy(repoRoot, a, l, pki); err != nil {
		t.Fatal(err)
	}
	b, err := envoy.Load(l.EnvoyConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := envoy.CheckPolicy(b); err != nil {
		t.Errorf("rendered config fails the policy: %v", err)
	}
	rendered, err := os.ReadFile(l.EnvoyConfig)
	if err != nil {
		t.Fatal(err)
	}
	// The certificate, key and CA paths are in the SDS files the config reads.
	sources, err := envoy.SecretSources(b)
	if err != nil {
		t.Fatal(err)
	}
	for p := range sources {
		sds, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("SDS file: %v", err)
		}
		if _, err := envoy.ParseSecrets(sds); err != nil {
			t.Errorf("SDS file %s: %v", p, err)
		}
		rendered = append(rendered, sds...)
	}
	for _, want := range []string{"18443", "19901", "19001", "16443", pki.CertFile, pki.KeyFile, filepath.Join(l.APIServerCert, "ca.crt")} {
		if !strings.Contains(string(rendered), want) {
			t.Errorf("rendered config lacks %s", want)
		}
	}
	if strings.Contains(string(rendered), "0.0.0.0") || strings.Contains(string(rendered), "/etc/kube-iam-authz") {
		t.Errorf("rendered config still has a production address or path")
	}
}

// TestKubeconfig loads the written kubeconfig with client-go, as kubectl
// does, and checks that each user signs with its own keys in an isolated
// environment.
func TestKubeconfig(t *testing.T) {
	ids, err := loadIdentities(filepath.Join(repoRoot, principalsFile))
	if err != nil {
		t.Fatal(err)
	}
	l := newLayout(t.TempDir())
	if err := l.writeKubeconfig("https://127.0.0.1:8443", "/ca.crt", "/bin/kube-iam-authz", ids); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(l.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var cfg clientcmdv1.Config
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		t.Fatalf("kubeconfig does not decode strictly: %v", err)
	}
	if cfg.CurrentContext != "admin" {
		t.Errorf("current context %q, want admin", cfg.CurrentContext)
	}
	users := map[string]*clientcmdv1.AuthInfo{}
	for i := range cfg.AuthInfos {
		users[cfg.AuthInfos[i].Name] = &cfg.AuthInfos[i].AuthInfo
	}
	contexts := map[string]clientcmdv1.Context{}
	for _, c := range cfg.Contexts {
		contexts[c.Name] = c.Context
	}
	if len(cfg.Clusters) != 1 || cfg.Clusters[0].Cluster.Server != "https://127.0.0.1:8443" || cfg.Clusters[0].Cluster.CertificateAuthority != "/ca.crt" {
		t.Errorf("clusters %+v: want the Envoy listener with the listener CA", cfg.Clusters)
	}
	for _, id := range ids {
		ctx, ok := contexts[id.Context]
		if !ok || ctx.Cluster != cfg.Clusters[0].Name || users[ctx.AuthInfo] == nil {
			t.Fatalf("context %s: %+v does not tie the cluster to a user", id.Context, ctx)
		}
		exec := users[ctx.AuthInfo].Exec
		if exec == nil || exec.Command != "/bin/kube-iam-authz" || strings.Join(exec.Args, " ") != "token --cluster-id demo --region us-east-1" {
			t.Fatalf("%s: exec %+v", id.Context, exec)
		}
		if exec.APIVersion != "client.authentication.k8s.io/v1" || exec.InteractiveMode != clientcmdv1.NeverExecInteractiveMode {
			t.Errorf("%s: exec apiVersion %q interactiveMode %q", id.Context, exec.APIVersion, exec.InteractiveMode)
		}
		env := map[string]string{}
		for _, e := range exec.Env {
			env[e.Name] = e.Value
		}
		want := map[string]string{
			"AWS_ACCESS_KEY_ID":     id.Principal.AccessKeyID,
			"AWS_SECRET_ACCESS_KEY": id.Principal.SecretAccessKey,
			"AWS_SESSION_TOKEN":     id.Principal.SessionToken,
			"AWS_PROFILE":           "",
			"HOME":                  l.Home,
		}
		for k, v := range want {
			if got, ok := env[k]; !ok || got != v {
				t.Errorf("%s: env %s = %q (set %v), want %q", id.Context, k, got, ok, v)
			}
		}
	}
}

// The supervisor is tested with this test binary as the child: with
// DEMO_TEST_CHILD set it behaves as a server would.
func TestMain(m *testing.M) {
	switch os.Getenv("DEMO_TEST_CHILD") {
	case "ready":
		waitForSignal(false, "noise before the ready line", "child ready url=x")
	case "stubborn":
		waitForSignal(true, "child ready url=x")
	case "crash":
		fmt.Fprintln(os.Stderr, "child: cannot bind 127.0.0.1:1: permission denied")
		os.Exit(3)
	default:
		os.Exit(m.Run())
	}
}

// waitForSignal prints lines once its signal handler is in place (so a
// SIGTERM right after the ready line is handled as the mode says).
func waitForSignal(ignoreTERM bool, lines ...string) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	for _, l := range lines {
		fmt.Println(l)
	}
	for range c {
		if !ignoreTERM {
			os.Exit(0)
		}
	}
}

// childEnv runs the test binary as a child in the given mode. Under -race
// the runtime sleeps a second at exit (GORACE atexit_sleep_ms), which would
// look like a child ignoring SIGTERM.
func childEnv(mode string) []string {
	return append(os.Environ(), "DEMO_TEST_CHILD="+mode, "GORACE=atexit_sleep_ms=0")
}

func TestSupervisor(t *testing.T) {
	readyLine := regexp.MustCompile(`^child ready url=(\S+)`)
	tests := map[string]struct {
		mode        string
		wantReady   bool
		wantErr     string
		wantStopped string
	}{
		"ready line, stops on SIGTERM":  {mode: "ready", wantReady: true, wantStopped: "child"},
		"ignores SIGTERM, gets SIGKILL": {mode: "stubborn", wantReady: true, wantStopped: "child (killed)"},
		"exits before ready":            {mode: "crash", wantErr: "exited before it was ready", wantStopped: "child (had exited)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := &supervisor{logDir: t.TempDir(), grace: 300 * time.Millisecond}
			c, err := s.start("child", os.Args[0], []string{"-test.run=^$"}, childEnv(tc.mode), readyLine)
			if err != nil {
				t.Fatal(err)
			}
			line, err := s.waitReady(context.Background(), c, 10*time.Second, nil)
			switch {
			case tc.wantReady && (err != nil || line != "child ready url=x"):
				t.Errorf("waitReady = %q, %v; want the ready line", line, err)
			case !tc.wantReady && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("waitReady err = %v, want %q", err, tc.wantErr)
			}
			if !tc.wantReady && !strings.Contains(logTail(c.LogPath, 5), "permission denied") {
				t.Errorf("the log does not hold the child's stderr: %q", logTail(c.LogPath, 5))
			}
			stopped := s.stopAll()
			if len(stopped) != 1 || stopped[0] != tc.wantStopped {
				t.Errorf("stopAll = %v, want [%s]", stopped, tc.wantStopped)
			}
			if err := syscall.Kill(c.Pid(), 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("child %d still exists after stopAll (kill 0: %v)", c.Pid(), err)
			}
		})
	}
}

// TestWaitReadyProbe: with a probe, readiness is the probe's, and the
// timeout names the last probe error.
func TestWaitReadyProbe(t *testing.T) {
	s := &supervisor{logDir: t.TempDir(), grace: time.Second}
	c, err := s.start("child", os.Args[0], []string{"-test.run=^$"}, childEnv("ready"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.stopAll()
	calls := 0
	_, err = s.waitReady(context.Background(), c, 5*time.Second, func(context.Context) error {
		if calls++; calls < 3 {
			return errors.New("503 not ready")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("waitReady = %v after %d probes, want nil after 3", err, calls)
	}
	_, err = s.waitReady(context.Background(), c, 300*time.Millisecond, func(context.Context) error { return errors.New("503 not ready") })
	if err == nil || !strings.Contains(err.Error(), "not ready after") || !strings.Contains(err.Error(), "503 not ready") {
		t.Errorf("waitReady = %v, want a timeout naming the probe error", err)
	}
}

var updateGolden = flag.Bool("update", false, "rewrite generated files (examples/compose/kubeconfig.yaml)")
