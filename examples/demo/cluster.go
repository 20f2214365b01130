package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kube-iam-authz/kube-iam-authz/internal/kubecluster"
)

// startCluster makes the cluster PKI and starts etcd and kube-apiserver.
func (d *demo) startCluster(ctx context.Context) error {
	a := d.o.Addrs
	end := d.ui.step("making the cluster's certificates and service-account key")
	pki, err := writeClusterPKI(d.files.APIServerCert, time.Now())
	if err == nil {
		var kc []byte
		if kc, err = kubecluster.AdminKubeconfig(a.APIServer, pki); err == nil {
			err = os.WriteFile(d.files.AdminKube, kc, 0o600)
		}
		if err == nil {
			if kc, err = kubecluster.ProxyKubeconfig(a.APIServer, pki.CAFile, d.files.ProxyToken); err == nil {
				err = os.WriteFile(d.files.ProxyKube, kc, 0o600)
			}
		}
	}
	end(err, "cluster CA and certificates in "+d.files.APIServerCert)
	if err != nil {
		return err
	}
	d.cluster = pki

	if _, err := d.start(ctx, launch{
		doing: "starting etcd (fresh data directory)",
		name:  "etcd",
		path:  d.o.Etcd,
		args:  etcdArgs(a, d.files.Etcd),
		probe: httpOK(http.DefaultClient, "http://"+a.EtcdClient+"/health"),
		ready: func(string) string { return "etcd ready on http://" + a.EtcdClient },
	}); err != nil {
		return err
	}

	args, err := kubeAPIServerArgs(a, d.o.RepoDir, d.files, pki)
	if err != nil {
		return err
	}
	client, err := kubecluster.AdminClient(pki, 5*time.Second)
	if err != nil {
		return err
	}
	_, err = d.start(ctx, launch{
		doing: "starting kube-apiserver v" + kubeAPIServerVersion + " (RBAC, audit log)",
		name:  "kube-apiserver",
		path:  d.bin("kube-apiserver"),
		args:  args,
		probe: func(ctx context.Context) error { return kubecluster.Ready(ctx, client, a.APIServer) },
		ready: func(string) string { return "kube-apiserver ready on https://" + a.APIServer },
	})
	return err
}

// bootstrap applies the proxy's manifests and the demo RBAC as the
// bootstrap admin, and writes the proxy's first token.
func (d *demo) bootstrap(ctx context.Context) error {
	d.ui.heading("Bootstrapping the cluster as " + bootstrapUser + " (system:masters, straight to kube-apiserver)")
	files := append(kubecluster.ProxyManifests(), demoRBACFile, awsAuthFile)
	args := []string{"--kubeconfig", d.files.AdminKube, "apply"}
	for _, f := range files {
		args = append(args, "-f", filepath.Join(d.o.RepoDir, f))
	}
	d.ui.printf("\n$ kubectl apply -f %s\n", strings.Join(files, " -f "))
	stdout, stderr, err := d.kubectl(ctx, args...)
	d.ui.block(stdout)
	d.ui.block(stderr)
	if err != nil {
		d.ui.printf("demo: kubectl apply: %v\n", err)
		return err
	}

	ns, name, err := proxyServiceAccount(d.o.RepoDir)
	if err == nil {
		d.requestToken, err = newTokenRequester(d.o.Addrs.APIServer, d.cluster, ns, name)
	}
	if err != nil {
		d.ui.printf("demo: %v\n", err)
		return err
	}
	end := d.ui.step("requesting the proxy's token (TokenRequest for serviceaccount " + ns + "/" + name + ")")
	issued := time.Now()
	token, expires, err := d.requestToken(ctx)
	if err == nil {
		err = writeTokenFile(d.files.ProxyToken, token)
	}
	end(err, fmt.Sprintf("proxy token for system:serviceaccount:%s:%s in %s, valid for %s",
		ns, name, d.files.ProxyToken, expires.Sub(issued).Round(time.Minute)))
	if err != nil {
		return err
	}
	d.tokenIssued, d.tokenExpires = issued, expires
	return nil
}

// keepTokenFresh refreshes the proxy token while the demo stays up, at 80%
// of its lifetime, as the kubelet does for the Deployment's projected
// token; serve re-reads the file when it changes.
func (d *demo) keepTokenFresh(ctx context.Context) {
	r := &tokenRefresher{
		request:    d.requestToken,
		write:      func(token string) error { return writeTokenFile(d.files.ProxyToken, token) },
		now:        time.Now,
		after:      time.After,
		retryAfter: 10 * time.Second,
		report: func(expires time.Time, err error) {
			if err != nil {
				d.ui.printf("proxy token refresh failed (retrying in 10s): %v\n", err)
				return
			}
			d.ui.printf("proxy token refreshed; the new one expires at %s\n", expires.Format(time.TimeOnly))
		},
	}
	go r.run(ctx, d.tokenIssued, d.tokenExpires)
}

// serverVersionLine is kubectl version's line for the server.
var serverVersionLine = regexp.MustCompile(`(?m)^Server Version: (v\S+)$`)

// version shows, through the whole chain as admin, which API server
// answers.
func (d *demo) version(ctx context.Context) bool {
	d.ui.heading("kubectl version, through Envoy and kube-iam-authz")
	d.ui.printf("\n$ kubectl version\n")
	stdout, stderr, err := d.kubectl(ctx, "version")
	d.ui.block(stdout)
	d.ui.block(stderr)
	m := serverVersionLine.FindStringSubmatch(stdout)
	switch {
	case err != nil:
		d.ui.printf("  ✗ kubectl version failed: %v\n", err)
		return false
	case m == nil || m[1] != "v"+kubeAPIServerVersion:
		d.ui.printf("  ✗ the server is not kube-apiserver v%s\n", kubeAPIServerVersion)
		return false
	}
	d.ui.printf("  → the API server behind the proxy is kube-apiserver %s\n", m[1])
	return true
}

// rbacAllowAndDeny shows that the mapping only names the caller: the
// developer may list pods in dev (demo RBAC) and may not list secrets, and
// the refusal is kube-apiserver's RBAC speaking, not kube-iam-authz.
func (d *demo) rbacAllowAndDeny(ctx context.Context) bool {
	dev := d.developer()
	ok := true

	d.ui.printf("\n$ kubectl --context %s get pods -n dev\n  # Role pod-reader, bound to group developers\n", dev.Context)
	stdout, stderr, err := d.kubectl(ctx, "--context", dev.Context, "get", "pods", "-n", "dev")
	d.ui.block(stdout)
	d.ui.block(stderr)
	if err != nil {
		d.ui.printf("  ✗ %s could not list pods in dev: %v\n", dev.Context, err)
		ok = false
	} else {
		d.ui.printf("  → allowed by RBAC\n")
	}

	d.ui.printf("\n$ kubectl --context %s get secrets -A\n  # no role grants it\n", dev.Context)
	stdout, stderr, err = d.kubectl(ctx, "--context", dev.Context, "get", "secrets", "-A")
	d.ui.block(stdout)
	d.ui.block(stderr)
	want := rbacDenial(dev.WantUser, "list", "secrets")
	switch {
	case err == nil:
		d.ui.printf("  ✗ %s listed secrets cluster-wide, want Forbidden\n", dev.Context)
		ok = false
	case !strings.Contains(stderr, want):
		d.ui.printf("  ✗ kubectl's error does not say %q\n", want)
		ok = false
	default:
		d.ui.printf("  → Forbidden by kube-apiserver's RBAC for the impersonated user\n")
	}
	return ok
}

// rbacDenial is kube-apiserver's RBAC refusal of a cluster-wide request on
// a core resource.
func rbacDenial(user, verb, resource string) string {
	return fmt.Sprintf(`%s is forbidden: User "%s" cannot %s resource "%s" in API group "" at the cluster scope`, resource, user, verb, resource)
}

// developer is the scripted identity mapped through mapRoles.
func (d *demo) developer() caller {
	for _, id := range d.ids {
		if id.Context == "developer" {
			return id
		}
	}
	return d.ids[0]
}

// auditEvent is the part of an audit.k8s.io/v1 Event the demo shows.
type auditEvent struct {
	Stage string `json:"stage"`
	Verb  string `json:"verb"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ImpersonatedUser *struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"impersonatedUser"`
	ObjectRef *struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// auditLine prints the audit record of the developer's `get pods -n dev`:
// the API server saw the proxy's service account impersonating the mapped
// user and groups.
func (d *demo) auditLine() bool {
	dev := d.developer()
	d.ui.printf("\nkube-apiserver's audit log (%s), the event of that list:\n", d.files.AuditLog)
	ev, err := findAuditEvent(d.files.AuditLog, func(e auditEvent) bool {
		return e.Stage == "ResponseComplete" && e.Verb == "list" && e.ObjectRef != nil &&
			e.ObjectRef.Resource == "pods" && e.ObjectRef.Namespace == "dev" &&
			e.ImpersonatedUser != nil && e.ImpersonatedUser.Username == dev.WantUser
	})
	if err != nil {
		d.ui.printf("  ✗ %v\n", err)
		return false
	}
	d.ui.block(fmt.Sprintf("user: %s\nimpersonatedUser: %s %v\nverb: list pods in dev → %d",
		ev.User.Username, ev.ImpersonatedUser.Username, ev.ImpersonatedUser.Groups, ev.ResponseStatus.Code))
	ns, name, _ := proxyServiceAccount(d.o.RepoDir)
	if want := "system:serviceaccount:" + ns + ":" + name; ev.User.Username != want {
		d.ui.printf("  ✗ the request was made by %q, want the proxy's service account %q\n", ev.User.Username, want)
		return false
	}
	d.ui.printf("  → the proxy's service account, impersonating the mapped user and groups\n")
	return true
}

// findAuditEvent returns the last event in the audit log that match
// accepts. The log backend writes each event before the response returns,
// so the event of a finished kubectl command is there.
func findAuditEvent(path string, match func(auditEvent) bool) (auditEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return auditEvent{}, err
	}
	defer f.Close()
	var found *auditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var e auditEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		if match(e) && e.ResponseStatus != nil {
			found = &e
		}
	}
	if err := sc.Err(); err != nil {
		return auditEvent{}, err
	}
	if found == nil {
		return auditEvent{}, fmt.Errorf("%s has no matching event", path)
	}
	return *found, nil
}
