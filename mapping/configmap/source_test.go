package configmap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kube-iam-authz/kube-iam-authz/authz/identity"
	"github.com/kube-iam-authz/kube-iam-authz/authz/kubeuser"
	"github.com/kube-iam-authz/kube-iam-authz/mapping"
)

func awsAuth(users ...string) *corev1.ConfigMap {
	var b strings.Builder
	for _, u := range users {
		b.WriteString("- userarn: arn:aws:iam::111122223333:user/" + u + "\n  username: " + u + "\n")
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-auth"},
		Data:       map[string]string{"mapUsers": b.String()},
	}
}

type fixture struct {
	client *fake.Clientset
	// watching is closed when the informer's watch reaches the fake: the
	// fake has no resourceVersions, so changes made between the informer's
	// list and its watch would be lost (a real API server replays them).
	watching chan struct{}
	store    *mapping.Store
	mapper   *mapping.Mapper
	logs     *observer.ObservedLogs
	logger   *zap.Logger
}

func newFixture(t *testing.T, objects ...*corev1.ConfigMap) *fixture {
	t.Helper()
	f := &fixture{client: fake.NewClientset(), watching: make(chan struct{})}
	var once sync.Once
	f.client.PrependWatchReactor("configmaps", func(action k8stesting.Action) (bool, watch.Interface, error) {
		if r, ok := action.(k8stesting.WatchActionImpl); ok && r.WatchRestrictions.Fields.String() != "metadata.name=aws-auth" {
			return true, nil, fmt.Errorf("watch with field selector %q, want metadata.name=aws-auth", r.WatchRestrictions.Fields)
		}
		once.Do(func() { close(f.watching) })
		return false, nil, nil
	})
	for _, o := range objects {
		if _, err := f.client.CoreV1().ConfigMaps(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	core, logs := observer.New(zap.DebugLevel)
	f.logs, f.logger = logs, zap.New(core)
	var err error
	f.store, err = mapping.NewStore(mapping.StoreOptions{Source: Describe("kube-system", "aws-auth"), Name: "test", Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	f.mapper, err = mapping.NewMapper(mapping.MapperOptions{Snapshots: f.store})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) start(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	src, err := New(Options{Client: f.client, Namespace: "kube-system", Name: "aws-auth", Store: f.store, Logger: f.logger, SyncTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Start(ctx); err != nil {
		return err
	}
	select {
	case <-f.watching:
	case <-time.After(10 * time.Second):
		t.Fatal("the informer never watched")
	}
	return nil
}

func (f *fixture) username(user string) (string, error) {
	u, err := f.mapper.Map(context.Background(), identity.Identity{CanonicalARN: "arn:aws:iam::111122223333:user/" + user, AccountID: "111122223333", PrincipalID: "AIDA" + strings.ToUpper(user)})
	return u.Username, err
}

// eventually waits up to 2 s (the bound for a change to be in
// effect) for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 2s: %s", what)
		}
	}
}

func (f *fixture) update(t *testing.T, cm *corev1.ConfigMap) {
	t.Helper()
	if _, err := f.client.CoreV1().ConfigMaps("kube-system").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestSourceLifecycle(t *testing.T) {
	f := newFixture(t, awsAuth("alice"))
	if err := f.start(t); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !f.store.Ready() {
		t.Fatal("store not ready after Start")
	}
	mapped := func(user string) func() bool {
		return func() bool { name, err := f.username(user); return err == nil && name == user }
	}
	unmapped := func(user string) func() bool {
		return func() bool { _, err := f.username(user); return errors.Is(err, kubeuser.ErrUnmapped) }
	}
	eventually(t, "alice mapped at start", mapped("alice"))

	f.update(t, awsAuth("alice", "bob"))
	eventually(t, "bob added", mapped("bob"))
	f.update(t, awsAuth("bob"))
	eventually(t, "alice removed", unmapped("alice"))

	// Broken: mapUsers no longer parses; the last good mapping stays.
	broken := awsAuth("bob")
	broken.Data["mapUsers"] = "- userarn: [\n"
	f.update(t, broken)
	eventually(t, "the broken version refused", func() bool { return f.store.Status().Result == mapping.ResultInvalid })
	if !mapped("bob")() {
		t.Error("bob lost access when a broken version arrived")
	}

	// An entry broken on its own is dropped; the rest applies.
	oneBad := awsAuth("bob", "carol")
	oneBad.Data["mapUsers"] += "- userarn: arn:aws:iam::111122223333:user/dave\n  username: \"da,ve\"\n"
	f.update(t, oneBad)
	eventually(t, "carol added beside a dropped entry", mapped("carol"))
	if got := f.store.Current().Counts().Dropped; got != 1 {
		t.Errorf("dropped entries = %d, want 1", got)
	}
	logged := f.logs.FilterMessage("mapping entry dropped; it grants nothing").All()
	if len(logged) == 0 || !strings.HasPrefix(logged[len(logged)-1].ContextMap()["position"].(string), "configmap kube-system/aws-auth:") {
		t.Errorf("dropped entry log = %v, want a configmap position", logged)
	}

	// Deleted: the last good mapping stays, and the status says why.
	if err := f.client.CoreV1().ConfigMaps("kube-system").Delete(context.Background(), "aws-auth", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deletion noticed", func() bool { return f.store.Status().Result == mapping.ResultMissing })
	if !mapped("carol")() || !strings.Contains(f.store.Status().Error, "was deleted; keeping the last good mapping") {
		t.Errorf("after delete: carol mapped %v, status %+v", mapped("carol")(), f.store.Status())
	}

	// Re-created: applied again.
	if _, err := f.client.CoreV1().ConfigMaps("kube-system").Create(context.Background(), awsAuth("erin"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "erin mapped after re-creation", mapped("erin"))
	eventually(t, "carol removed by the re-created version", unmapped("carol"))
}

func TestSourceStartFailures(t *testing.T) {
	t.Run("missing ConfigMap", func(t *testing.T) {
		f := newFixture(t)
		if err := f.start(t); !errors.Is(err, ErrNotFound) {
			t.Errorf("Start = %v, want ErrNotFound", err)
		}
	})
	t.Run("RBAC refuses the proxy", func(t *testing.T) {
		f := newFixture(t, awsAuth("alice"))
		f.client.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "aws-auth", errors.New("RBAC: not allowed"))
		})
		err := f.start(t)
		if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "RBAC: not allowed") {
			t.Errorf("Start = %v, want ErrForbidden with the API server's reason", err)
		}
		if f.store.Ready() {
			t.Error("store ready without a mapping")
		}
	})
	t.Run("structurally broken ConfigMap", func(t *testing.T) {
		cm := awsAuth()
		cm.Data["mapRoles"] = "- rolearn: [\n"
		f := newFixture(t, cm)
		if err := f.start(t); !errors.Is(err, mapping.ErrInvalid) {
			t.Errorf("Start = %v, want ErrInvalid", err)
		}
	})
	t.Run("other ConfigMaps are ignored", func(t *testing.T) {
		other := awsAuth("mallory")
		other.Name = "not-aws-auth"
		f := newFixture(t, other, awsAuth("alice"))
		if err := f.start(t); err != nil {
			t.Fatal(err)
		}
		if _, err := f.username("mallory"); !errors.Is(err, kubeuser.ErrUnmapped) {
			t.Errorf("mallory from another ConfigMap: %v, want ErrUnmapped", err)
		}
	})
}

func TestOptionsValidate(t *testing.T) {
	err := Options{Resync: -1, SyncTimeout: -1}.Validate()
	for _, want := range []string{"Client is required", "Namespace and Name are required", "Store is required", "Resync is negative", "SyncTimeout is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

func TestRender(t *testing.T) {
	cm := &corev1.ConfigMap{Data: map[string]string{
		"mapUsers": "- userarn: arn:aws:iam::111122223333:user/a\n  username: a\n",
		"mapRoles": "- rolearn: arn:aws:iam::111122223333:role/R\n  username: \"r,x\"\n",
	}}
	snap, err := mapping.Parse(Render(cm))
	if err != nil {
		t.Fatal(err)
	}
	dropped := snap.Dropped()
	// mapRoles sorts first: line 1 is "mapRoles: |", the entry's username is line 3.
	if len(dropped) != 1 || dropped[0].Line != 3 || dropped[0].Path != "mapRoles[0].username" {
		t.Errorf("dropped = %+v, want mapRoles[0].username at line 3 of the rendering", dropped)
	}
	if c := snap.Counts(); c.Users != 1 {
		t.Errorf("Counts = %+v", c)
	}
	if string(Render(&corev1.ConfigMap{})) != "{}\n" {
		t.Errorf("Render(no data) = %q", Render(&corev1.ConfigMap{}))
	}
	again := cm.DeepCopy()
	again.ResourceVersion = "42"
	if string(Render(cm)) != string(Render(again)) {
		t.Error("Render depends on metadata")
	}
}

// TestSourceUsesOnlyRequiredVerbs: every request a Source makes is one of
// RequiredVerbs on configmaps in its namespace, restricted to its one name
// (get by name; list and watch with the metadata.name field selector), so
// RBAC with resourceNames and those verbs is all it needs.
func TestSourceUsesOnlyRequiredVerbs(t *testing.T) {
	f := newFixture(t, awsAuth("alice"))
	before := len(f.client.Actions())
	if err := f.start(t); err != nil {
		t.Fatal(err)
	}
	f.update(t, awsAuth("alice", "bob"))
	eventually(t, "bob added", func() bool { name, err := f.username("bob"); return err == nil && name == "bob" })
	seen := map[string]bool{}
	for _, a := range f.client.Actions()[before:] {
		if a.GetVerb() == "update" {
			continue // the test's own edit
		}
		seen[a.GetVerb()] = true
		if !slices.Contains(RequiredVerbs(), a.GetVerb()) || a.GetResource().Resource != "configmaps" || a.GetNamespace() != "kube-system" {
			t.Errorf("request %s %s in %q: not in RequiredVerbs %v on kube-system configmaps", a.GetVerb(), a.GetResource().Resource, a.GetNamespace(), RequiredVerbs())
		}
		switch r := a.(type) {
		case k8stesting.GetAction:
			if r.GetName() != "aws-auth" {
				t.Errorf("get of %q, want aws-auth", r.GetName())
			}
		case k8stesting.ListAction:
			if got := r.GetListRestrictions().Fields.String(); got != "metadata.name=aws-auth" {
				t.Errorf("list with field selector %q, want metadata.name=aws-auth", got)
			}
		case k8stesting.WatchAction:
			if got := r.GetWatchRestrictions().Fields.String(); got != "metadata.name=aws-auth" {
				t.Errorf("watch with field selector %q, want metadata.name=aws-auth", got)
			}
		}
	}
	for _, v := range RequiredVerbs() {
		if !seen[v] {
			t.Errorf("RequiredVerbs lists %q, which the source never used", v)
		}
	}
}
