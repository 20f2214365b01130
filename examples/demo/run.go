package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/internal/kubecluster"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// stsReadyLine is the STS stand-in's ready line (its command documents it).
var stsReadyLine = regexp.MustCompile(`^sts-fake ready url=(\S+)`)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err == nil {
		err = o.resolve()
	}
	if err == nil {
		err = o.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "demo: cannot start:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return exitUsage
	}
	ids, err := loadIdentities(filepath.Join(o.RepoDir, principalsFile))
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return exitUsage
	}
	d := &demo{
		o:      o,
		ui:     newProgress(stdout, getenv, time.Now),
		files:  newLayout(o.StateDir),
		ids:    ids,
		getenv: getenv,
	}
	d.sup = &supervisor{logDir: d.files.Logs, grace: o.StopGrace}
	code := d.run(ctx)
	d.stop()
	return code
}

// demo is one run of the chain.
type demo struct {
	o      *options
	ui     *progress
	files  layout
	ids    []caller
	sup    *supervisor
	getenv func(string) string

	stsURL    string
	metrics   string
	stsClient *http.Client

	cluster      kubecluster.PKI
	requestToken tokenRequester
	// tokenIssued and tokenExpires describe the proxy token in the file.
	tokenIssued, tokenExpires time.Time
}

func (d *demo) run(ctx context.Context) int {
	d.ui.heading("kube-iam-authz demo: kubectl → Envoy → kube-iam-authz → STS stand-in; Envoy → kube-apiserver v" + kubeAPIServerVersion + " + etcd")
	if err := d.pickPorts(); err != nil {
		d.ui.printf("demo: %v\n", err)
		return exitUsage
	}
	if err := d.files.prepare(); err != nil {
		d.ui.printf("demo: %v\n", err)
		return exitFailed
	}
	if err := d.startChain(ctx); err != nil {
		if ctx.Err() != nil {
			d.ui.printf("\ninterrupted\n")
			return exitInterrupted
		}
		return exitFailed
	}

	ok := d.version(ctx)
	d.ui.heading("kubectl auth whoami, as three AWS identities")
	for _, id := range d.ids {
		if !d.whoami(ctx, id) {
			ok = false
		}
	}
	d.ui.heading("RBAC decides what a mapped identity may do (" + demoRBACFile + ")")
	if !d.rbacAllowAndDeny(ctx) {
		ok = false
	}
	if !d.auditLine() {
		ok = false
	}
	d.ui.heading("kubectl --as, authorized by SubjectAccessReview for the mapped caller")
	if !d.impersonation(ctx) {
		ok = false
	}
	d.printSTSStats(ctx)
	if !ok {
		d.ui.printf("\nThe scripted part did not show what it should; logs are in %s\n", d.files.Logs)
		return exitFailed
	}
	if d.o.OneShot {
		d.ui.printf("\nDEMO_ONESHOT: the scripted part passed; stopping.\n")
		return exitOK
	}
	d.printTryIt()
	d.keepTokenFresh(ctx)
	select {
	case <-ctx.Done():
		d.ui.printf("\n")
		return exitOK
	case c := <-d.sup.firstExit():
		d.ui.printf("\n%s exited unexpectedly (%v); last lines of %s:\n", c.Name, c.waitErr, c.LogPath)
		d.ui.block(logTail(c.LogPath, logTailLines))
		return exitFailed
	}
}

// pickPorts either takes free ephemeral ports or checks that the fixed ones
// are free, naming every busy one, so the demo fails before starting
// anything rather than halfway with a bind error in some log.
func (d *demo) pickPorts() error {
	a := &d.o.Addrs
	if d.o.FreePorts {
		for _, p := range []*string{&a.EtcdClient, &a.EtcdPeer, &a.APIServer, &a.STS, &a.AuthzGRPC, &a.AuthzHTTP, &a.EnvoyListen, &a.EnvoyAdmin} {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return fmt.Errorf("pick a free port: %w", err)
			}
			*p = l.Addr().String()
			_ = l.Close()
		}
		return nil
	}
	var busy []string
	for _, n := range a.each() {
		l, err := net.Listen("tcp", n.addr)
		if err != nil {
			busy = append(busy, fmt.Sprintf("  %s (%s, %s): %v", n.addr, n.what, n.flag, err))
			continue
		}
		_ = l.Close()
	}
	if len(busy) > 0 {
		return fmt.Errorf("ports in use:\n%s\nStop what holds them (another demo?), pass the flags above, or use --free-ports", strings.Join(busy, "\n"))
	}
	return nil
}

// childEnv is the whole environment of the servers: nothing of the reader's
// AWS setup reaches them (no profile, no IMDS), so the demo can never call
// real AWS.
func (d *demo) childEnv() []string {
	return []string{
		"PATH=" + d.getenv("PATH"),
		"HOME=" + d.files.Home,
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
	}
}

func (d *demo) bin(name string) string { return filepath.Join(d.o.BinDir, name) }

// launch is one process of the chain and how to tell it is ready: a line
// it prints (the stand-ins announce themselves) or a probe that succeeds.
type launch struct {
	doing     string // progress text while starting
	name      string // log file and process name
	path      string
	args      []string
	readyLine *regexp.Regexp
	probe     func(context.Context) error
	ready     func(readyLine string) string // progress text once ready
}

// startChain starts the five processes in dependency order, waits for
// each to be ready, and bootstraps the cluster between kube-apiserver and
// serve (serve needs the proxy's token).
func (d *demo) startChain(ctx context.Context) error {
	a := d.o.Addrs
	if err := d.startCluster(ctx); err != nil {
		return err
	}
	if err := d.bootstrap(ctx); err != nil {
		return err
	}

	line, err := d.start(ctx, launch{
		doing: "starting the STS stand-in (sts-fake)",
		name:  "sts-fake",
		path:  d.bin("sts-fake"),
		args: []string{
			"--listen", a.STS, "--tls", "--ca-out", d.files.STSCA,
			"--principals", filepath.Join(d.o.RepoDir, principalsFile),
		},
		readyLine: stsReadyLine,
		ready:     func(string) string { return "STS stand-in ready on https://" + a.STS },
	})
	if err != nil {
		return err
	}
	d.stsURL = stsReadyLine.FindStringSubmatch(line)[1]
	if err := d.initSTSClient(); err != nil {
		d.ui.printf("demo: %v\n", err)
		return err
	}

	d.metrics = "http://" + a.AuthzHTTP + "/metrics"
	_, err = d.start(ctx, launch{
		doing: "starting kube-iam-authz serve on " + awsAuthRef + " (" + awsAuthFile + ", applied above) with --allow-impersonation",
		name:  "kube-iam-authz",
		path:  d.bin("kube-iam-authz"),
		args: []string{
			"serve",
			"--grpc-listen", a.AuthzGRPC,
			"--http-listen", a.AuthzHTTP,
			"--cluster-id", clusterID,
			// The cluster's own aws-auth ConfigMap, watched as the proxy.
			"--mapping-configmap", awsAuthRef,
			"--sts-endpoint", d.stsURL,
			"--sts-ca-file", d.files.STSCA,
			"--upstream-token-file", d.files.ProxyToken,
			// kubectl --as: each requested attribute is authorized for the
			// mapped caller with a SubjectAccessReview (as the proxy).
			"--allow-impersonation",
			// The proxy's API client (aws-auth watch, SubjectAccessReviews).
			"--kubeconfig", d.files.ProxyKube,
		},
		probe: httpOK(http.DefaultClient, "http://"+a.AuthzHTTP+"/readyz"),
		ready: func(string) string {
			return "kube-iam-authz ready: ext_authz gRPC on " + a.AuthzGRPC + ", metrics on " + d.metrics
		},
	})
	if err != nil {
		return err
	}

	end := d.ui.step("rendering envoy/sidecar.yaml for loopback")
	pki, err := writeListenerPKI(d.files.PKI, time.Now())
	if err == nil {
		err = renderEnvoy(d.o.RepoDir, a, d.files, pki)
	}
	end(err, "Envoy config rendered: "+d.files.EnvoyConfig)
	if err != nil {
		return err
	}
	_, err = d.start(ctx, launch{
		doing: "starting envoy",
		name:  "envoy",
		path:  d.o.Envoy,
		args: []string{
			"-c", d.files.EnvoyConfig,
			// No shared memory for hot restart: several Envoys (a test, a
			// demo) can run on one machine.
			"--disable-hot-restart",
			"--concurrency", "1",
			"--log-level", "info",
			// Access log lines reach the log file at once, not every 10s.
			"--file-flush-interval-msec", "200",
		},
		probe: httpOK(http.DefaultClient, "http://"+a.EnvoyAdmin+"/ready"),
		ready: func(string) string { return "Envoy ready: kubectl talks to https://" + a.EnvoyListen },
	})
	if err != nil {
		return err
	}

	if err := d.files.writeKubeconfig("https://"+a.EnvoyListen, pki.CAFile, d.bin("kube-iam-authz"), d.ids); err != nil {
		d.ui.printf("demo: kubeconfig: %v\n", err)
		return err
	}
	if err := d.writeState(); err != nil {
		d.ui.printf("demo: %v\n", err)
		return err
	}
	d.ui.printf("ready\n")
	return nil
}

// start runs one process as a progress step and waits until it is ready;
// on failure it prints the tail of the process's log. It returns the ready
// line, if the process has one.
func (d *demo) start(ctx context.Context, l launch) (string, error) {
	end := d.ui.step(l.doing)
	c, err := d.sup.start(l.name, l.path, l.args, d.childEnv(), l.readyLine)
	if err != nil {
		end(err, "")
		return "", err
	}
	line, err := d.sup.waitReady(ctx, c, d.o.ReadyTimeout, l.probe)
	if err != nil {
		end(err, "")
		if ctx.Err() == nil {
			d.ui.printf("last lines of %s:\n", c.LogPath)
			d.ui.block(logTail(c.LogPath, logTailLines))
		}
		return "", err
	}
	end(nil, l.ready(line))
	return line, nil
}

// httpOK is a readiness probe: GET url answers 200.
func httpOK(client *http.Client, url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return nil
	}
}

func (d *demo) initSTSClient() error {
	pem, err := os.ReadFile(d.files.STSCA)
	if err != nil {
		return fmt.Errorf("STS stand-in CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return errors.New("STS stand-in CA: no certificate in " + d.files.STSCA)
	}
	d.stsClient = &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
	return nil
}

// state is what state.json records for scripts and tests: where things
// listen and which processes to expect.
type state struct {
	Addrs      addrs          `json:"addrs"`
	Pids       map[string]int `json:"pids"`
	Kubeconfig string         `json:"kubeconfig"`
	Metrics    string         `json:"metrics"`
	// MappingConfigMap is what serve watches; AdminKubeconfig may edit it.
	MappingConfigMap string `json:"mappingConfigMap"`
	AdminKubeconfig  string `json:"adminKubeconfig"`
	STS              string `json:"sts"`
}

func (d *demo) writeState() error {
	b, err := json.MarshalIndent(state{
		Addrs: d.o.Addrs, Pids: d.sup.pids(), Kubeconfig: d.files.Kubeconfig,
		Metrics: d.metrics, MappingConfigMap: awsAuthRef, AdminKubeconfig: d.files.AdminKube, STS: d.stsURL,
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(d.files.State, append(b, '\n'), 0o600)
}

// printSTSStats shows how many GetCallerIdentity calls reached the STS
// stand-in: one per token, however many requests a token was used for,
// because kube-iam-authz caches what it verified.
func (d *demo) printSTSStats(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.stsURL+"/_fake/stats", nil)
	if err != nil {
		return
	}
	resp, err := d.stsClient.Do(req)
	if err != nil {
		d.ui.printf("\n(STS stand-in stats unavailable: %v)\n", err)
		return
	}
	defer resp.Body.Close()
	var stats struct {
		Total    int64            `json:"total"`
		Outcomes map[string]int64 `json:"outcomes"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&stats); err != nil {
		return
	}
	keys := make([]string, 0, len(stats.Outcomes))
	for k := range stats.Outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, stats.Outcomes[k]))
	}
	d.ui.printf("\nThe STS stand-in verified %d presigned GetCallerIdentity URLs (%s):\none per distinct token; a token seen before is answered from kube-iam-authz's cache.\n",
		stats.Total, strings.Join(parts, ", "))
}

func (d *demo) printTryIt() {
	a := d.o.Addrs
	d.ui.heading("The chain is up. Try it in another terminal:")
	d.ui.block(strings.Join([]string{
		"export KUBECONFIG=" + d.files.Kubeconfig,
		"kubectl auth whoami                        # admin (mapUsers)",
		"kubectl --context developer auth whoami    # developer:alice (mapRoles)",
		"kubectl --context unmapped auth whoami     # refused (kubectl hides the 403's message)",
		"kubectl --context unmapped get --raw /api  # Error from server (Forbidden): ...",
		"kubectl --context developer get pods -n dev   # allowed by " + demoRBACFile,
		"kubectl --context developer get secrets -A    # Forbidden by kube-apiserver's RBAC",
		"kubectl --as developer:alice auth whoami       # admin may impersonate (system:masters)",
		"kubectl --context developer --as admin get --raw /api   # developer may not: 403",
		"",
		"Metrics:      curl -s " + d.metrics + " | grep ^kube_iam_authz_",
		"Readiness:    curl -s http://" + a.AuthzHTTP + "/readyz",
		"Envoy stats:  curl -s 'http://" + a.EnvoyAdmin + "/stats?filter=ext_authz'",
		"STS calls:    curl -s --cacert " + d.files.STSCA + " " + d.stsURL + "/_fake/stats",
		"Logs:         " + d.files.Logs + "/{etcd,kube-apiserver,sts-fake,kube-iam-authz,envoy}.log",
		"Audit log:    " + d.files.AuditLog,
		"No proxy:     kubectl --kubeconfig " + d.files.AdminKube + " get ns   # the bootstrap admin, straight to kube-apiserver",
		"",
		"Edit the mapping live: kube-iam-authz watches the cluster's " + awsAuthRef,
		"(" + awsAuthFile + ", applied at bootstrap), as EKS keeps it:",
		"    kubectl --kubeconfig " + d.files.AdminKube + " edit configmap -n kube-system aws-auth",
		"Map the unmapped user by adding under mapUsers:",
		"    - userarn: " + d.unmappedARN(),
		"      username: intern",
		"      groups: [interns]",
		"save, and run `kubectl --context unmapped auth whoami` again. A mistake in",
		"the ConfigMap, or deleting it, is logged and the last good mapping stays in force.",
	}, "\n"))
	d.ui.printf("\nPress Ctrl-C to stop everything.\n")
}

// unmappedARN is the ARN of the first identity the mapping refuses.
func (d *demo) unmappedARN() string {
	for _, id := range d.ids {
		if !id.WantAllowed {
			return id.Principal.ARN
		}
	}
	return "arn:aws:iam::777788889999:user/intern"
}

// stop stops every child and says so.
func (d *demo) stop() {
	if len(d.sup.pids()) == 0 {
		return
	}
	end := d.ui.step("stopping")
	stopped := d.sup.stopAll()
	end(nil, "stopped "+strings.Join(stopped, ", "))
}
