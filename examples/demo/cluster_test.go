package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/kube-iam-authz/kube-iam-authz/internal/kubecluster"
)

// TestClusterPKI: the demo's cluster PKI is kubecluster's, with the
// demo's bootstrap user in system:masters.
func TestClusterPKI(t *testing.T) {
	p, err := writeClusterPKI(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(p.AdminCertFile, p.AdminKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if admin.Subject.CommonName != bootstrapUser || !slices.Equal(admin.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("bootstrap subject %v, want CN=%s O=system:masters", admin.Subject, bootstrapUser)
	}
	if got := admin.NotAfter.Sub(admin.NotBefore); got < certLifetime {
		t.Errorf("bootstrap certificate valid for %s, want a demo session (%s)", got, certLifetime)
	}
}

// TestKubeAPIServerArgs: the demo wires its addresses, state layout and
// the repository's audit policy into kubecluster's flags (which
// internal/kubecluster pins).
func TestKubeAPIServerArgs(t *testing.T) {
	l := newLayout("/state")
	p := kubecluster.PKI{CAFile: "/p/ca.crt", ServingCertFile: "/p/s.crt", ServingKeyFile: "/p/s.key", SAKeyFile: "/p/sa.key", SAPubFile: "/p/sa.pub"}
	args, err := kubeAPIServerArgs(addrs{APIServer: "127.0.0.1:16443", EtcdClient: "127.0.0.1:12379"}, "/repo", l, p)
	if err != nil {
		t.Fatal(err)
	}
	want, err := kubecluster.APIServer{
		Addr: "127.0.0.1:16443", EtcdClientAddr: "127.0.0.1:12379", PKI: p, CertDir: l.APIServerCert,
		AuditPolicyFile: "/repo/" + kubecluster.AuditPolicyFile, AuditLogPath: l.AuditLog,
	}.Args()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(args, want) {
		t.Errorf("kube-apiserver flags:\n got %q\nwant %q", args, want)
	}
	if _, err := kubeAPIServerArgs(addrs{APIServer: "no-port"}, "/repo", l, p); err == nil {
		t.Errorf("an address without a port was accepted")
	}
}

// TestProxyServiceAccountIsTheBoundOne: the demo requests its token for
// the service account the shipped RBAC binds, so the impersonation rights
// the demo relies on are exactly the shipped ones.
func TestProxyServiceAccountIsTheBoundOne(t *testing.T) {
	ns, name, err := proxyServiceAccount(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "kubernetes", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var bound bool
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var crb rbacv1.ClusterRoleBinding
		if err := yaml.Unmarshal([]byte(doc), &crb); err != nil || crb.Kind != "ClusterRoleBinding" {
			continue
		}
		for _, s := range crb.Subjects {
			if s.Kind == "ServiceAccount" && s.Namespace == ns && s.Name == name {
				bound = true
			}
		}
	}
	if !bound {
		t.Errorf("examples/kubernetes/rbac.yaml binds no ClusterRole to serviceaccount %s/%s", ns, name)
	}
	if _, _, err := proxyServiceAccount(t.TempDir()); err == nil {
		t.Errorf("a repository without the manifest was accepted")
	}
}

// TestDemoRBAC: the developer's groups get list on pods in dev and nothing
// else, so the scripted allow and deny are RBAC's doing.
func TestDemoRBAC(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, demoRBACFile))
	if err != nil {
		t.Fatal(err)
	}
	var (
		role      rbacv1.Role
		binding   rbacv1.RoleBinding
		ns        corev1.Namespace
		kindsSeen []string
	)
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		kindsSeen = append(kindsSeen, meta.Kind)
		var into any
		switch meta.Kind {
		case "Namespace":
			into = &ns
		case "Role":
			into = &role
		case "RoleBinding":
			into = &binding
		default:
			t.Fatalf("%s has a %s; the demo RBAC is a namespace, a Role and a RoleBinding", demoRBACFile, meta.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
			t.Fatalf("%s: %v", meta.Kind, err)
		}
	}
	if !slices.Equal(kindsSeen, []string{"Namespace", "Role", "RoleBinding"}) {
		t.Fatalf("kinds %v: the namespace must come first (kubectl apply creates in order)", kindsSeen)
	}
	if ns.Name != "dev" || role.Namespace != "dev" || binding.Namespace != "dev" || binding.RoleRef.Name != role.Name {
		t.Errorf("namespace %q, role %s/%s, binding %s/%s → %s: want all in dev, bound to the role", ns.Name, role.Namespace, role.Name, binding.Namespace, binding.Name, binding.RoleRef.Name)
	}
	if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Resources, []string{"pods"}) || !slices.Contains(role.Rules[0].Verbs, "list") ||
		!slices.Equal(role.Rules[0].APIGroups, []string{""}) {
		t.Errorf("role rules %+v: want list on core pods only", role.Rules)
	}
	ids, err := loadIdentities(filepath.Join(repoRoot, principalsFile))
	if err != nil {
		t.Fatal(err)
	}
	var dev caller
	for _, id := range ids {
		if id.Context == "developer" {
			dev = id
		}
	}
	if len(binding.Subjects) != 1 || binding.Subjects[0].Kind != "Group" || !slices.Contains(dev.WantGroups, binding.Subjects[0].Name) {
		t.Errorf("binding subjects %+v: want one group the developer (%v) is in", binding.Subjects, dev.WantGroups)
	}
}

func TestRBACDenial(t *testing.T) {
	want := `secrets is forbidden: User "developer:alice" cannot list resource "secrets" in API group "" at the cluster scope`
	if got := rbacDenial("developer:alice", "list", "secrets"); got != want {
		t.Errorf("rbacDenial = %q\nwant       %q", got, want)
	}
}

func TestWriteTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy-token")
	for _, tok := range []string{"first.jwt", "second.jwt"} {
		if err := writeTokenFile(path, tok); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != tok {
			t.Errorf("file holds %q (%v), want %q", b, err, tok)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

// fakeClock advances when the refresher waits, so the test runs at once.
type fakeClock struct {
	t      time.Time
	waited []time.Duration
}

func (c *fakeClock) now() time.Time { return c.t }

func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	c.waited = append(c.waited, d)
	c.t = c.t.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.t
	return ch
}

// TestTokenRefresher: a refresh at 80% of each token's lifetime, a failure
// retried after retryAfter and reported, the file rewritten with each new
// token, and nothing after ctx ends.
func TestTokenRefresher(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	answers := []error{nil, errors.New("apiserver down"), nil}
	var written []string
	var reports []string
	calls := 0
	r := &tokenRefresher{
		request: func(context.Context) (string, time.Time, error) {
			err := answers[calls]
			calls++
			if calls == len(answers) {
				cancel()
			}
			if err != nil {
				return "", time.Time{}, err
			}
			return "token-" + string(rune('0'+calls)), clock.now().Add(100 * time.Second), nil
		},
		write:      func(tok string) error { written = append(written, tok); return nil },
		now:        clock.now,
		after:      clock.after,
		retryAfter: 7 * time.Second,
		report: func(exp time.Time, err error) {
			if err != nil {
				reports = append(reports, "error: "+err.Error())
				return
			}
			reports = append(reports, "expires "+exp.Sub(t0).String())
		},
	}
	done := make(chan struct{})
	go func() { r.run(ctx, t0, t0.Add(time.Hour)); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("refresher did not stop after ctx ended")
	}
	// 48m (80% of the hour), then 80s (80% of 100s), then the 7s retry.
	wantWaits := []time.Duration{48 * time.Minute, 80 * time.Second, 7 * time.Second}
	if !slices.Equal(clock.waited, wantWaits) {
		t.Errorf("waits %v, want %v", clock.waited, wantWaits)
	}
	if !slices.Equal(written, []string{"token-1"}) {
		t.Errorf("written %v, want [token-1] (the failed request writes nothing; the last ended with ctx)", written)
	}
	if want := []string{"expires 49m40s", "error: apiserver down"}; !slices.Equal(reports, want) {
		t.Errorf("reports %v, want %v", reports, want)
	}
}

func TestFindAuditEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	lines := []string{
		`{"kind":"Event","stage":"ResponseComplete","verb":"list","user":{"username":"system:serviceaccount:kube-iam-authz:kube-iam-authz"},"impersonatedUser":{"username":"developer:alice","groups":["developers","system:authenticated"]},"objectRef":{"resource":"pods","namespace":"dev"},"responseStatus":{"code":200}}`,
		`not json`,
		`{"kind":"Event","stage":"ResponseComplete","verb":"list","user":{"username":"kube-iam-authz-demo-bootstrap"},"objectRef":{"resource":"pods","namespace":"dev"},"responseStatus":{"code":200}}`,
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ev, err := findAuditEvent(path, func(e auditEvent) bool { return e.ImpersonatedUser != nil })
	if err != nil {
		t.Fatal(err)
	}
	if ev.User.Username != "system:serviceaccount:kube-iam-authz:kube-iam-authz" || ev.ImpersonatedUser.Username != "developer:alice" ||
		!slices.Equal(ev.ImpersonatedUser.Groups, []string{"developers", "system:authenticated"}) || ev.ResponseStatus.Code != 200 {
		t.Errorf("event %+v", ev)
	}
	if _, err := findAuditEvent(path, func(e auditEvent) bool { return e.Verb == "delete" }); err == nil {
		t.Errorf("no matching event, but no error")
	}
}

func TestImpersonationDenial(t *testing.T) {
	want := `users "admin" is forbidden: User "developer:alice" cannot impersonate resource "users" in API group "" at the cluster scope`
	if got := impersonationDenial("developer:alice", "admin"); got != want {
		t.Errorf("impersonationDenial = %q\nwant                 %q", got, want)
	}
}

func TestHasExtra(t *testing.T) {
	out := `ATTRIBUTE                                    VALUE
Username                                     developer:alice
Extra: kube-iam-authz.io/original-username   [admin]
Extra: kube-iam-authz.io/original-groups     [system:masters other]
`
	tests := map[string]struct {
		key, want string
		found     bool
	}{
		"the value":                   {key: "kube-iam-authz.io/original-username", want: "admin", found: true},
		"one of several":              {key: "kube-iam-authz.io/original-groups", want: "other", found: true},
		"another key's value":         {key: "kube-iam-authz.io/original-username", want: "system:masters"},
		"a key prefix is not the key": {key: "kube-iam-authz.io/original", want: "admin"},
		"a missing key":               {key: "kube-iam-authz.io/original-arn", want: "admin"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := hasExtra(out, tc.key, tc.want); got != tc.found {
				t.Errorf("hasExtra(%q, %q) = %v, want %v", tc.key, tc.want, got, tc.found)
			}
		})
	}
}
