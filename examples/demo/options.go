package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/internal/kubecluster"
)

// The demo's fixed loopback addresses. They are the ports of the production
// layout (envoy/sidecar.yaml: listener 8443, admin 9901, ext_authz 9001;
// serve's default HTTP port 9090) and of docker-compose.yml, so what the
// demo prints is what a reader finds in the configs. --free-ports replaces
// them with free ephemeral ports (the integration test does this).
const (
	defaultEnvoyListen = "127.0.0.1:8443"
	defaultEnvoyAdmin  = "127.0.0.1:9901"
	defaultAuthzGRPC   = "127.0.0.1:9001"
	defaultAuthzHTTP   = "127.0.0.1:9090"
	defaultSTSListen   = "127.0.0.1:9443"
	defaultAPIServer   = "127.0.0.1:6443"
	defaultEtcdClient  = "127.0.0.1:2379"
	defaultEtcdPeer    = "127.0.0.1:2380"
	// kube-apiserver needs etcd, its storage and its post-start hooks
	// (bootstrap RBAC, priority and fairness): 10–30 s on a loaded machine.
	defaultReadyTimeout  = 90 * time.Second
	defaultStopGrace     = 5 * time.Second
	defaultKubectlBudget = 30 * time.Second
	// clusterID is what the tokens are signed for and serve expects.
	clusterID = "demo"
)

// addrs are the loopback addresses the chain listens on.
type addrs struct {
	EnvoyListen string `json:"envoyListen"`
	EnvoyAdmin  string `json:"envoyAdmin"`
	AuthzGRPC   string `json:"authzGRPC"`
	AuthzHTTP   string `json:"authzHTTP"`
	STS         string `json:"sts"`
	APIServer   string `json:"apiServer"`
	EtcdClient  string `json:"etcdClient"`
	EtcdPeer    string `json:"etcdPeer"`
}

// each lists the addresses with the component that binds them, in start order.
func (a addrs) each() []namedAddr {
	return []namedAddr{
		{"etcd client", "--etcd-listen", a.EtcdClient},
		{"etcd peer", "--etcd-peer-listen", a.EtcdPeer},
		{"kube-apiserver", "--apiserver-listen", a.APIServer},
		{"sts-fake (STS stand-in)", "--sts-listen", a.STS},
		{"kube-iam-authz gRPC", "--authz-grpc", a.AuthzGRPC},
		{"kube-iam-authz HTTP", "--authz-http", a.AuthzHTTP},
		{"Envoy listener", "--envoy-listen", a.EnvoyListen},
		{"Envoy admin", "--envoy-admin", a.EnvoyAdmin},
	}
}

type namedAddr struct{ what, flag, addr string }

// options are the command line. Defaults come from the environment `make`
// exports (KIA_BIN, KIA_ENVOY) and DEMO_ONESHOT.
type options struct {
	RepoDir      string
	StateDir     string
	BinDir       string
	Envoy        string
	Etcd         string
	Kubectl      string
	OneShot      bool
	FreePorts    bool
	Addrs        addrs
	ReadyTimeout time.Duration
	StopGrace    time.Duration
}

func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{
		RepoDir:      ".",
		StateDir:     ".demo",
		BinDir:       envOr(getenv, "KIA_BIN", "bin"),
		Envoy:        envOr(getenv, "KIA_ENVOY", filepath.Join(".tools", "py", "bin", "envoy")),
		Etcd:         defaultEtcd(),
		Kubectl:      defaultKubectl(),
		ReadyTimeout: defaultReadyTimeout,
		StopGrace:    defaultStopGrace,
		Addrs: addrs{
			EnvoyListen: defaultEnvoyListen,
			EnvoyAdmin:  defaultEnvoyAdmin,
			AuthzGRPC:   defaultAuthzGRPC,
			AuthzHTTP:   defaultAuthzHTTP,
			STS:         defaultSTSListen,
			APIServer:   defaultAPIServer,
			EtcdClient:  defaultEtcdClient,
			EtcdPeer:    defaultEtcdPeer,
		},
	}
	oneshot, err := envBool(getenv, "DEMO_ONESHOT")
	if err != nil {
		return nil, err
	}
	o.OneShot = oneshot

	fs := o.flagSet(stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return o, nil
}

// flagSet binds every option to a flag; the README's flag table is checked
// against it.
func (o *options) flagSet(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.RepoDir, "repo", o.RepoDir, "repository root (reads envoy/sidecar.yaml, examples/aws-auth.yaml and the RBAC it applies)")
	fs.StringVar(&o.StateDir, "state-dir", o.StateDir, "directory for generated files and logs (wiped at start)")
	fs.StringVar(&o.BinDir, "bin-dir", o.BinDir, "directory with kube-iam-authz, sts-fake and kube-apiserver (env KIA_BIN)")
	fs.StringVar(&o.Envoy, "envoy", o.Envoy, "envoy binary (env KIA_ENVOY)")
	fs.StringVar(&o.Etcd, "etcd", o.Etcd, "etcd binary (Debian's etcd-server, installed by make debs)")
	fs.StringVar(&o.Kubectl, "kubectl", o.Kubectl, "kubectl binary")
	fs.BoolVar(&o.OneShot, "oneshot", o.OneShot, "exit after the scripted part (env DEMO_ONESHOT=1)")
	fs.BoolVar(&o.FreePorts, "free-ports", o.FreePorts, "use free ephemeral loopback ports instead of the fixed ones")
	fs.StringVar(&o.Addrs.EnvoyListen, "envoy-listen", o.Addrs.EnvoyListen, "Envoy listener kubectl talks to")
	fs.StringVar(&o.Addrs.EnvoyAdmin, "envoy-admin", o.Addrs.EnvoyAdmin, "Envoy admin interface")
	fs.StringVar(&o.Addrs.AuthzGRPC, "authz-grpc", o.Addrs.AuthzGRPC, "kube-iam-authz ext_authz gRPC address")
	fs.StringVar(&o.Addrs.AuthzHTTP, "authz-http", o.Addrs.AuthzHTTP, "kube-iam-authz /metrics, /healthz, /readyz address")
	fs.StringVar(&o.Addrs.STS, "sts-listen", o.Addrs.STS, "STS stand-in address")
	fs.StringVar(&o.Addrs.APIServer, "apiserver-listen", o.Addrs.APIServer, "kube-apiserver address (bind address and secure port)")
	fs.StringVar(&o.Addrs.EtcdClient, "etcd-listen", o.Addrs.EtcdClient, "etcd client address (kube-apiserver's storage)")
	fs.StringVar(&o.Addrs.EtcdPeer, "etcd-peer-listen", o.Addrs.EtcdPeer, "etcd peer address (a one-member cluster still binds it)")
	fs.DurationVar(&o.ReadyTimeout, "ready-timeout", o.ReadyTimeout, "how long each process may take to become ready")
	return fs
}

// resolve makes every path absolute (the kubeconfig and Envoy config name
// files by path, and children run with other working directories in mind).
func (o *options) resolve() error {
	for _, p := range []*string{&o.RepoDir, &o.StateDir, &o.BinDir, &o.Envoy} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	for _, p := range []*string{&o.Kubectl, &o.Etcd} {
		if !strings.ContainsRune(*p, os.PathSeparator) {
			if path, err := exec.LookPath(*p); err == nil {
				*p = path
			}
		}
	}
	return nil
}

// Validate reports every problem at once, each with what to run to fix it.
func (o *options) Validate() error {
	var errs []error
	exe := func(path, fix string) {
		fi, err := os.Stat(path)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: not found; %s", path, fix))
		case fi.IsDir() || fi.Mode()&0o111 == 0:
			errs = append(errs, fmt.Errorf("%s: not an executable file; %s", path, fix))
		}
	}
	exe(filepath.Join(o.BinDir, "kube-iam-authz"), "run `make build`")
	exe(filepath.Join(o.BinDir, "sts-fake"), "run `make build`")
	exe(filepath.Join(o.BinDir, "kube-apiserver"), "run `make kube-apiserver` (builds v"+kubeAPIServerVersion+", minutes the first time)")
	exe(o.Etcd, "run `make debs` (Debian's etcd-server) or pass --etcd")
	exe(o.Envoy, "run `make envoy`")
	exe(o.Kubectl, "install kubectl or pass --kubectl")
	for _, f := range append([]string{"envoy/sidecar.yaml", "examples/aws-auth.yaml", principalsFile, demoRBACFile, kubecluster.AuditPolicyFile}, kubecluster.ProxyManifests()...) {
		if _, err := os.Stat(filepath.Join(o.RepoDir, f)); err != nil {
			errs = append(errs, fmt.Errorf("--repo %s: %w", o.RepoDir, err))
		}
	}
	if !o.FreePorts {
		seen := map[string]string{}
		for _, a := range o.Addrs.each() {
			if err := loopbackAddr(a.addr); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", a.flag, a.addr, err))
			}
			if other, dup := seen[a.addr]; dup {
				errs = append(errs, fmt.Errorf("%s and %s are both %s", other, a.flag, a.addr))
			}
			seen[a.addr] = a.flag
		}
	}
	if o.ReadyTimeout <= 0 {
		errs = append(errs, errors.New("--ready-timeout must be positive"))
	}
	return errors.Join(errs...)
}

// loopbackAddr accepts only a loopback IP with a non-zero port: the demo
// must never listen on a network interface.
func loopbackAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return errors.New("not a loopback IP address")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return errors.New("needs a fixed port")
	}
	return nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func envBool(getenv func(string) string, key string) (bool, error) {
	v := getenv(key)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want 1/0/true/false", key, v)
	}
	return b, nil
}

// defaultEtcd prefers Debian's /usr/bin/etcd (etcd-server), else PATH.
func defaultEtcd() string {
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd"
	}
	return "etcd"
}

// defaultKubectl prefers the machine's /usr/bin/kubectl, else PATH.
func defaultKubectl() string {
	if _, err := os.Stat("/usr/bin/kubectl"); err == nil {
		return "/usr/bin/kubectl"
	}
	return "kubectl"
}
